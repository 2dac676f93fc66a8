"""The promotion gate on per-row outcomes: a margin the sample supports, retention rows that
must exist, the benign flag rate, and forcing that takes an admin and is audited.

Summaries come from `training.evaluate.compute_report` over rows and scores, exactly what
`warden eval` stores; promotions go through the registry on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from storage.db import unit_of_work
from storage.errors import PermissionDenied
from storage.models import AuditEvent
from storage.policy import parse_policy
from storage.users import create_user
from training import registry
from training.evaluate import EvalRow, compute_report
from training.gate import GateSettings, gate

POLICY = parse_policy(
    {
        "name": "t",
        "categories": [
            {"id": "scam", "title": "Scam", "description": "scam", "threshold": 0.5},
            {"id": "drugs", "title": "Drugs", "description": "drugs", "threshold": 0.5},
        ],
    }
)


def _summary(name: str, rows: list[tuple[str, tuple[str, ...], bool]], predicted: dict) -> dict:
    """rows: (id, labels, retention); predicted: id -> flagged categories (default: labels)."""
    eval_rows = [EvalRow(Path(f"/set/{i}.png"), labels, retention=ret) for i, labels, ret in rows]
    scores = [
        {c: (0.9 if c in predicted.get(i, labels) else 0.1) for c in ("scam", "drugs")}
        for i, labels, _ in rows
    ]
    return compute_report(name, eval_rows, scores, POLICY, eval_key="set").summary()


def _rows(n_scam: int, n_drugs: int, n_safe: int, n_retention: int) -> list:
    """Class-balanced rows; the last `n_retention` of each class are retention rows."""
    out = []
    for cls, n in (("scam", n_scam), ("drugs", n_drugs), ("safe", n_safe)):
        labels = () if cls == "safe" else (cls,)
        out += [(f"{cls}{k}", labels, k >= n - n_retention) for k in range(n)]
    return out


def test_equal_candidate_on_a_small_sample_is_refused_and_a_clearly_better_one_passes() -> None:
    rows = _rows(10, 10, 10, 3)
    live_misses = {f"scam{k}": () for k in range(3)}  # live misses 3 of 10 scam rows
    live = _summary("live", rows, live_misses)
    same = _summary("cand", rows, live_misses)
    ok, checks, reasons = gate(same, live)
    assert not ok
    avg = next(c for c in checks if c.name == "average_recall")
    assert avg.delta == 0 and avg.bound is not None and avg.bound <= 0 and avg.n == 30
    assert "lower bound" in reasons[0] and "30 paired rows" in reasons[0]

    # One row better out of 30: higher by the point estimate (the old strict `>` passed it),
    # but not by a margin 30 rows support.
    one_better = _summary("cand", rows, {f"scam{k}": () for k in range(2)})
    ok, checks, reasons = gate(one_better, live)
    avg = next(c for c in checks if c.name == "average_recall")
    assert avg.candidate > avg.live and not ok and "lower bound" in reasons[0]

    # Clearly better: live misses 40 of 100 scam rows, the candidate 5.
    big = _rows(100, 100, 100, 20)
    live = _summary("live", big, {f"scam{k}": () for k in range(40)})
    cand = _summary("cand", big, {f"scam{k}": () for k in range(5)})
    ok, checks, reasons = gate(cand, live)
    assert ok, reasons
    avg = next(c for c in checks if c.name == "average_recall")
    assert avg.bound is not None and 0 < avg.bound < avg.delta


def test_no_retention_rows_refuses_even_a_better_candidate() -> None:
    rows = _rows(100, 100, 100, 0)
    live = _summary("live", rows, {f"scam{k}": () for k in range(40)})
    cand = _summary("cand", rows, {})
    ok, _, reasons = gate(cand, live)
    assert not ok
    assert reasons == [r for r in reasons if "retention" in r] and "no retention rows" in reasons[0]


def test_missing_or_different_rows_refuse() -> None:
    rows = _rows(100, 100, 100, 20)
    live = _summary("live", rows, {f"scam{k}": () for k in range(40)})
    cand = _summary("cand", rows, {})
    old_style = {k: v for k, v in cand.items() if k != "rows"}  # a summary from before rows
    ok, checks, reasons = gate(old_style, live)
    assert not ok and checks == [] and "no per-row results" in reasons[0]
    other = _summary("cand", rows[:-1], {})
    ok, _, reasons = gate(other, live)
    assert not ok and "different rows" in reasons[0]


def test_benign_flag_rate_rise_refuses_overall_and_on_retention() -> None:
    rows = _rows(100, 100, 100, 20)
    live = _summary("live", rows, {f"scam{k}": () for k in range(40)})
    # Finds every scam, but also flags 5 harmless rows that live left alone (+0.05).
    flags = {f"safe{k}": ("scam",) for k in range(5)}
    cand = _summary("cand", rows, flags)
    ok, checks, reasons = gate(cand, live)
    assert not ok
    benign = next(c for c in checks if c.name == "benign_flag_rate")
    assert benign.delta == pytest.approx(0.05) and not benign.passed and benign.n == 100
    assert benign.bound is not None and benign.bound > benign.delta
    assert any("benign flag rate 0.000 -> 0.050 (rise +0.050)" in r for r in reasons)
    # (A harmless row flagged is also "safe" recall lost: that line has its own tolerance.)
    assert not gate(cand, live, GateSettings(tolerance=0.06))[0]
    # A tolerance above the point rise is not enough: 5 flips in 100 rows bound the rise
    # near 0.09; a tolerance above that bound passes.
    assert not gate(cand, live, GateSettings(tolerance=0.06, benign_tolerance=0.06))[0]
    assert gate(cand, live, GateSettings(tolerance=0.06, benign_tolerance=0.12))[0]

    # Flags only among the 20 retention harmless rows: 2 of 20 = +0.10 there, 0.02 overall.
    flags = {f"safe{k}": ("drugs",) for k in (98, 99)}
    cand = _summary("cand", rows, flags)
    ok, checks, reasons = gate(cand, live, GateSettings(tolerance=0.2, retention_tolerance=0.2))
    assert not ok and len(reasons) == 2
    assert reasons[1] == (
        "benign flag rate on the retention set 0.000 -> 0.100 (rise +0.100): its 95% upper "
        f"bound {checks[-1].bound:+.3f} on 20 paired harmless rows is above 0.020"
    )
    # 0.02 overall is at the tolerance, but 100 harmless rows cannot bound it there.
    overall = next(c for c in checks if c.name == "benign_flag_rate")
    assert overall.delta == pytest.approx(0.02) and not overall.passed
    assert reasons[0].startswith("benign flag rate 0.000 -> 0.020")


def _benign_rows(n_benign: int) -> list:
    """100 scam rows (20 retention) and `n_benign` harmless rows (20 retention)."""
    return _rows(100, 0, 0, 20) + [(f"safe{k}", (), k >= n_benign - 20) for k in range(n_benign)]


def test_one_harmless_row_of_a_small_golden_set_cannot_pass_but_of_a_large_one_can() -> None:
    """The last outside turn: one of 26 harmless golden rows newly flagged. The old line
    refused it on the point estimate (+0.038); the same point test passed a rise exactly at
    the tolerance however few rows showed it. Now the bound decides: two new flags in 100
    harmless rows (+0.020, which the old `<=` let through) are refused, the same two among
    1,000 harmless rows pass, and flags that come and go cancel."""
    settings = GateSettings(tolerance=0.2, retention_tolerance=0.2)
    small = _benign_rows(100)
    live = _summary("live", small, {f"scam{k}": () for k in range(40)})
    two = {f"safe{k}": ("scam",) for k in (0, 1)}  # not retention rows
    ok, checks, reasons = gate(_summary("cand", small, two), live, settings)
    line = next(c for c in checks if c.name == "benign_flag_rate")
    assert line.delta == pytest.approx(0.02) and line.bound is not None and line.bound > 0.02
    assert not ok and reasons == [
        f"benign flag rate 0.000 -> 0.020 (rise +0.020): its 95% upper bound "
        f"{line.bound:+.3f} on 100 paired harmless rows is above 0.020"
    ]

    large = _benign_rows(1000)
    live = _summary("live", large, {f"scam{k}": () for k in range(40)})
    ok, checks, reasons = gate(_summary("cand", large, two), live, settings)
    line = next(c for c in checks if c.name == "benign_flag_rate")
    assert ok, reasons
    assert line.delta == pytest.approx(0.002) and line.bound is not None and line.bound < 0.01

    # 10 rows newly flagged and 10 others no longer flagged: no rise, a small bound.
    live_flags = {f"scam{k}": () for k in range(40)} | {f"safe{k}": ("scam",) for k in range(10)}
    live = _summary("live", large, live_flags)
    cand = _summary("cand", large, {f"safe{k}": ("scam",) for k in range(10, 20)})
    ok, checks, reasons = gate(cand, live, settings)
    line = next(c for c in checks if c.name == "benign_flag_rate")
    assert ok, reasons
    assert line.delta == pytest.approx(0.0) and 0 < line.bound < 0.01  # type: ignore[operator]

    # No harmless row changes: the bound is 0 whatever the row count.
    ok, checks, _ = gate(
        _summary("cand", _rows(100, 0, 26, 20), {}),
        _summary("live", _rows(100, 0, 26, 20), {f"scam{k}": () for k in range(40)}),
        settings,
    )
    line = next(c for c in checks if c.name == "benign_flag_rate")
    assert ok and line.bound == 0.0 and line.n == 26


def _register(engine: Engine, live_summary: dict, cand_summary: dict) -> None:
    with unit_of_work(engine) as s:
        registry.register_model(s, "v1", "/m/v1", actor="eng", live=True)
        registry.record_eval(s, "v1", "set", live_summary)
        registry.register_model(s, "v2", "/m/v2", actor="eng")
        registry.record_eval(s, "v2", "set", cand_summary)


def test_promote_refuses_without_retention_rows_and_force_needs_an_admin(engine: Engine) -> None:
    rows = _rows(60, 60, 60, 0)
    _register(
        engine,
        _summary("v1", rows, {f"scam{k}": () for k in range(30)}),
        _summary("v2", rows, {}),
    )
    with unit_of_work(engine) as s:
        res = registry.promote(s, "v2", "eng")
        assert not res.promoted and any("no retention rows" in r for r in res.reasons)
        with pytest.raises(PermissionDenied, match="only an admin"):
            registry.promote(s, "v2", "eng", force=True, reason="trust me")
        create_user(s, "mod", "a-long-password-1", "moderator", actor="test")
        with pytest.raises(PermissionDenied, match="only an admin"):
            registry.promote(s, "v2", "mod", force=True, reason="trust me")
        assert registry.live_model(s).name == "v1"
    with unit_of_work(engine) as s:
        create_user(s, "boss", "a-long-password-2", "admin", actor="test")
        res = registry.promote(s, "v2", "boss", force=True, reason="hotfix for a scam wave")
        assert res.promoted and res.forced and "hotfix for a scam wave" in res.summary()
    with unit_of_work(engine) as s:
        assert registry.live_model(s).name == "v2"
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "model.promote").order_by(AuditEvent.id)
        ).all()[-1]
        assert event.actor == "boss"
        detail = event.detail if hasattr(event, "detail") else event.details
        assert detail["forced"] is True and detail["force_reason"] == "hotfix for a scam wave"
        assert any("no retention rows" in r for r in detail["reasons"])


def test_promote_passes_a_clearly_better_candidate_on_golden_plus_retention(engine: Engine) -> None:
    rows = _rows(60, 60, 60, 15)
    _register(
        engine,
        _summary("v1", rows, {f"scam{k}": () for k in range(30)}),
        _summary("v2", rows, {}),
    )
    with unit_of_work(engine) as s:
        res = registry.promote(s, "v2", "eng")
        assert res.promoted and not res.forced, res.summary()
        names = {c.name for c in res.checks}
        assert {"average_recall", "retention", "benign_flag_rate"} <= names
        assert {"retention_benign_flag_rate", "recall[scam]", "retention[drugs]"} <= names


def test_promote_judges_on_the_golden_split_over_a_later_manifest_evaluation(
    engine: Engine,
) -> None:
    golden = _rows(60, 60, 60, 15)
    _register(
        engine,
        _summary("v1", golden, {f"scam{k}": () for k in range(30)}),
        _summary("v2", golden, {}),
    )
    key = "dataset:0123456789abcdef:golden"
    with unit_of_work(engine) as s:
        for name in ("v1", "v2"):  # "set" above, then the golden split, then a bare manifest
            summary = registry.get_model(s, name).metrics["evals"]["set"]
            registry.record_eval(s, name, key, summary)
        no_retention = _rows(60, 60, 60, 0)
        registry.record_eval(s, "v1", "manifest", _summary("v1", no_retention, {}))
        registry.record_eval(s, "v2", "manifest", _summary("v2", no_retention, {}))
    with unit_of_work(engine) as s:
        res = registry.promote(s, "v2", "eng")
        assert res.eval_key == key and res.promoted, res.summary()
