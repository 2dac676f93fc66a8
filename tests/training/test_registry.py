"""Registry and promotion gate on SQLite and PostgreSQL: refuse regressions, accept
improvements, roll back, audit every step, tell the live-swap hook after commit."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from storage.db import unit_of_work
from storage.errors import Conflict
from storage.models import AuditEvent
from storage.policy import parse_policy
from storage.users import create_user
from training import registry
from training.evaluate import EvalRow, compute_report

POLICY = parse_policy(
    {
        "name": "t",
        "categories": [
            {"id": "a", "title": "A", "description": "a", "threshold": 0.5},
            {"id": "b", "title": "B", "description": "b", "threshold": 0.5},
        ],
    }
)
PER_CLASS, RETAINED = 60, 15  # rows per class (a, b, safe); the last 15 of each: retention


def _summary(misses: dict[str, int], retention_misses: dict[str, int] | None = None) -> dict:
    """An evaluation summary (as `warden eval` stores it) in which the model misses the first
    `misses[c]` new rows and the first `retention_misses[c]` retention rows of category c."""
    rows, scores = [], []
    for cls in ("a", "b", "safe"):
        labels = () if cls == "safe" else (cls,)
        for k in range(PER_CLASS):
            retained = k >= PER_CLASS - RETAINED
            n_missed = (retention_misses or {}).get(cls, 0) if retained else misses.get(cls, 0)
            first = PER_CLASS - RETAINED if retained else 0
            hit = k - first >= n_missed
            rows.append(EvalRow(Path(f"/set/{cls}{k}.png"), labels, retention=retained))
            scores.append({c: 0.9 if (c in labels) == hit else 0.1 for c in ("a", "b")})
    return compute_report("m", rows, scores, POLICY, eval_key="evalA").summary()


LIVE = _summary({"a": 12, "b": 12})


def _setup(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        registry.register_model(s, "v1", "/m/v1", actor="eng", live=True)
        registry.record_eval(s, "v1", "evalA", LIVE)


def test_gate_refuses_category_regression_and_accepts_improvement(engine: Engine) -> None:
    _setup(engine)
    with unit_of_work(engine) as s:
        registry.register_model(s, "v2", "/m/v2", actor="eng", adapter_uri="/a/v2")
        # Better on average (a finds all), but category b drops 8/60 = 0.133 > tolerance 0.03.
        registry.record_eval(s, "v2", "evalA", _summary({"a": 0, "b": 20}))
        registry.register_model(s, "v3", "/m/v3", actor="eng")
        registry.record_eval(s, "v3", "evalA", _summary({"a": 0, "b": 11}))
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
        registry.record_eval(s, "forgets", "evalA", _summary({}, {"a": 5}))
        registry.register_model(s, "same", "/m/s", actor="eng")
        registry.record_eval(s, "same", "evalA", _summary({"a": 12, "b": 12}))
        registry.register_model(s, "unevaluated", "/m/u", actor="eng")
        create_user(s, "admin", "a-long-password-1", "admin", actor="test")
    with unit_of_work(engine) as s:
        res = registry.promote(s, "forgets", "eng", retention_tolerance=0.01)
        assert not res.promoted and any("retention" in r for r in res.reasons)
        res = registry.promote(s, "same", "eng")
        assert not res.promoted and "lower bound" in res.reasons[0]
        res = registry.promote(s, "unevaluated", "eng")
        assert not res.promoted and "common set" in res.reasons[0]
        forced = registry.promote(s, "forgets", "admin", force=True, reason="test")
        assert forced.promoted and forced.forced
        assert registry.live_model(s).name == "forgets"


def test_gate_refuses_forgetting_one_category_that_new_data_hides(engine: Engine) -> None:
    """Over the whole set category b gains (the new rows), but on the retention rows alone it
    drops 1/15 = 0.067: refused, by name."""
    _setup(engine)
    cand = _summary({"a": 0, "b": 0}, {"b": 1})
    ok, checks, reasons = registry.gate(
        cand, LIVE, registry.GateSettings(tolerance=0.03, retention_tolerance=0.05)
    )
    assert not ok and reasons == [
        "b recall on the retention set drops 0.067 (> 0.030): 14 of 15 rows caught, live 15"
    ]
    assert {c.name for c in checks} >= {"retention[a]", "retention[b]", "recall[b]"}
    assert next(c for c in checks if c.name == "recall[b]").delta > 0  # gains overall
    fine = _summary({"a": 0, "b": 0})
    assert registry.gate(fine, LIVE, registry.GateSettings(tolerance=0.03))[0]


def test_rollback_restores_previous_live(engine: Engine) -> None:
    _setup(engine)
    with unit_of_work(engine) as s:
        registry.register_model(s, "v2", "/m/v2", actor="eng")
        registry.record_eval(s, "v2", "evalA", _summary({"a": 0, "b": 0}))
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
