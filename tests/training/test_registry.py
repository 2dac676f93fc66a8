"""Registry and promotion gate on SQLite and PostgreSQL: refuse regressions, accept
improvements, roll back, audit every step, tell the live-swap hook after commit."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from storage.db import unit_of_work
from storage.errors import Conflict
from storage.models import AuditEvent
from training import registry


def _summary(avg: float, cats: dict[str, float], retention: float) -> dict:
    return {
        "average_recall": avg,
        "retention": retention,
        "per_category": {c: {"recall": r} for c, r in cats.items()},
    }


def _setup(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        registry.register_model(s, "v1", "/m/v1", actor="eng", live=True)
        registry.record_eval(s, "v1", "evalA", _summary(0.80, {"a": 0.8, "b": 0.8}, 0.90))


def test_gate_refuses_category_regression_and_accepts_improvement(engine: Engine) -> None:
    _setup(engine)
    with unit_of_work(engine) as s:
        registry.register_model(s, "v2", "/m/v2", actor="eng", adapter_uri="/a/v2")
        # Better on average, but category b drops 0.10 > tolerance 0.03.
        registry.record_eval(s, "v2", "evalA", _summary(0.85, {"a": 1.0, "b": 0.7}, 0.90))
        registry.register_model(s, "v3", "/m/v3", actor="eng")
        registry.record_eval(s, "v3", "evalA", _summary(0.84, {"a": 0.88, "b": 0.79}, 0.895))
    with unit_of_work(engine) as s:
        res = registry.promote(s, "v2", "eng", tolerance=0.03, retention_tolerance=0.01)
        assert not res.promoted
        assert any("b recall drops" in r for r in res.reasons)
        assert registry.live_model(s).name == "v1"
    seen: list[str] = []
    unsubscribe = registry.on_live_change(lambda info: seen.append(info.name))
    try:
        with unit_of_work(engine) as s:
            res = registry.promote(s, "v3", "eng", tolerance=0.03, retention_tolerance=0.01)
            assert res.promoted, res.summary()
            assert seen == []  # not before the commit
        assert seen == ["v3"]
    finally:
        unsubscribe()
    with unit_of_work(engine) as s:
        assert registry.live_model(s).name == "v3"
        statuses = {m.name: m.status for m in registry.list_models(s)}
        assert statuses == {"v1": "retired", "v2": "candidate", "v3": "live"}
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert "model.promote_refused" in actions and "model.promote" in actions


def test_gate_refuses_retention_drop_and_no_improvement(engine: Engine) -> None:
    _setup(engine)
    with unit_of_work(engine) as s:
        registry.register_model(s, "forgets", "/m/f", actor="eng")
        registry.record_eval(s, "forgets", "evalA", _summary(0.9, {"a": 0.9, "b": 0.9}, 0.85))
        registry.register_model(s, "same", "/m/s", actor="eng")
        registry.record_eval(s, "same", "evalA", _summary(0.80, {"a": 0.8, "b": 0.8}, 0.9))
        registry.register_model(s, "unevaluated", "/m/u", actor="eng")
    with unit_of_work(engine) as s:
        res = registry.promote(s, "forgets", "eng", retention_tolerance=0.01)
        assert not res.promoted and any("retention" in r for r in res.reasons)
        res = registry.promote(s, "same", "eng")
        assert not res.promoted and "does not beat" in res.reasons[0]
        res = registry.promote(s, "unevaluated", "eng")
        assert not res.promoted and "common set" in res.reasons[0]
        forced = registry.promote(s, "forgets", "admin", force=True)
        assert forced.promoted and forced.forced
        assert registry.live_model(s).name == "forgets"


def test_gate_refuses_forgetting_one_category_that_new_data_hides(engine: Engine) -> None:
    """Over the whole set category b gains (the new variant's items), but on the retention
    rows alone it drops 0.06: refused, by name."""
    _setup(engine)
    live = _summary(0.80, {"a": 0.8, "b": 0.8}, 0.90) | {
        "retention_per_category": {"a": 0.9, "b": 0.9}
    }
    cand = _summary(0.88, {"a": 0.9, "b": 0.86}, 0.895) | {
        "retention_per_category": {"a": 0.95, "b": 0.84}
    }
    ok, checks, reasons = registry.gate(cand, live, tolerance=0.03, retention_tolerance=0.01)
    assert not ok and reasons == ["b recall on the retention set drops 0.060 (> 0.030)"]
    assert {c.name for c in checks} >= {"retention[a]", "retention[b]", "recall[b]"}
    fine = cand | {"retention_per_category": {"a": 0.95, "b": 0.88}}
    assert registry.gate(fine, live, tolerance=0.03, retention_tolerance=0.01)[0]


def test_rollback_restores_previous_live(engine: Engine) -> None:
    _setup(engine)
    with unit_of_work(engine) as s:
        registry.register_model(s, "v2", "/m/v2", actor="eng")
        registry.record_eval(s, "v2", "evalA", _summary(0.9, {"a": 0.9, "b": 0.85}, 0.9))
        assert registry.promote(s, "v2", "eng").promoted
    with unit_of_work(engine) as s:
        back = registry.rollback(s, "eng")
        assert back.name == "v1" and back.status == "live"
        assert registry.get_model(s, "v2").status == "rolled_back"
    with unit_of_work(engine) as s:
        with pytest.raises(Conflict, match="nothing to roll back"):
            registry.rollback(s, "eng")
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "model.rollback")).first()


def test_register_rejects_duplicates(engine: Engine) -> None:
    _setup(engine)
    with unit_of_work(engine) as s, pytest.raises(Conflict):
        registry.register_model(s, "v1", "/x", actor="eng")
    with unit_of_work(engine) as s, pytest.raises(Conflict, match="live model exists"):
        registry.register_model(s, "v9", "/x", actor="eng", live=True)
