"""Per-category thresholds calibrated for a target benign flag rate (model.calibration
.fit_thresholds), stored beside a model as thresholds.json and applied by the real backend at
scoring time (a tiny real InternVL), and kept when the registry has no calibration of its own."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from model.calibration import (
    THRESHOLDS_FILE,
    Calibration,
    fit_thresholds,
    load_thresholds,
)


def _rows(seed: int, n: int = 600):
    """Two categories; harmless rows score high on "a" one time in five (a false alarm the
    policy threshold 0.5 lets through), true "a" rows score higher still."""
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    for i in range(n):
        kind = i % 3  # 0 harmless, 1 "a", 2 "b"
        a = rng.uniform(0.55, 0.75) if kind == 0 and rng.random() < 0.2 else rng.uniform(0, 0.4)
        if kind == 1:
            a = rng.uniform(0.8, 1.0)
        b = rng.uniform(0.6, 1.0) if kind == 2 else rng.uniform(0, 0.45)
        scores.append({"a": float(a), "b": float(b)})
        labels.append([] if kind == 0 else ["a" if kind == 1 else "b"])
    return scores, labels


def _rates(cal: Calibration | None, scores, labels):
    mapped = [cal.apply(s) if cal else s for s in scores]
    flagged = [[c for c, p in m.items() if p >= 0.5] for m in mapped]
    benign = [bool(f) for f, t in zip(flagged, labels, strict=True) if not t]
    rec_a = np.mean([("a" in f) for f, t in zip(flagged, labels, strict=True) if "a" in t])
    return sum(benign) / len(benign), rec_a


def test_thresholds_meet_the_target_on_validation_and_carry_to_new_rows() -> None:
    scores, labels = _rows(0)
    before, recall_before = _rates(None, scores, labels)
    assert before > 0.15  # the policy's 0.5 flags one harmless row in five
    cal = fit_thresholds(scores, labels, {"a": 0.5, "b": 0.5}, target_benign_rate=0.01)
    after, recall_after = _rates(cal, scores, labels)
    assert after <= 0.01 and recall_after == recall_before == 1.0
    assert cal.categories["a"].threshold > 0.6 and cal.categories["b"].threshold == 0.5
    assert cal.info["reached"] and cal.info["benign_rate_before"] == pytest.approx(before)
    # Rows the thresholds were not fitted on: the same low false-alarm rate.
    new_scores, new_labels = _rows(1)
    assert _rates(cal, new_scores, new_labels)[0] <= 0.03


def test_thresholds_are_never_lowered_below_the_policy() -> None:
    scores, labels = _rows(2)
    cal = fit_thresholds(scores, labels, {"a": 0.9, "b": 0.5}, target_benign_rate=0.5)
    assert cal.categories["a"].threshold == pytest.approx(0.9)
    assert cal.apply({"a": 0.89, "b": 0.1})["a"] < 0.9 < cal.apply({"a": 0.91, "b": 0.1})["a"]


def test_a_target_out_of_reach_stops_at_the_ceiling_and_says_so() -> None:
    scores = [{"a": 0.99}] * 30 + [{"a": 0.995}] * 30
    labels = [[]] * 30 + [["a"]] * 30
    cal = fit_thresholds(scores, labels, {"a": 0.5}, target_benign_rate=0.0, max_threshold=0.98)
    assert cal.categories["a"].threshold == pytest.approx(0.98)
    assert cal.info["reached"] is False


def test_a_category_with_too_few_positives_is_left_at_the_policy_threshold() -> None:
    """Two harassment rows in validation cannot price a raise: it would look free (nothing
    lost) and silence the category on data with more of it, so it is not made."""
    scores = [{"a": 0.1, "h": 0.7}] * 3 + [{"a": 0.1, "h": 0.1}] * 60  # 3 harmless alarms
    labels: list[list[str]] = [[]] * 63
    scores += [{"a": 0.1, "h": 0.9}] * 2 + [{"a": 0.9, "h": 0.1}] * 20
    labels += [["h"]] * 2 + [["a"]] * 20
    cal = fit_thresholds(scores, labels, {"a": 0.5, "h": 0.5}, target_benign_rate=0.01)
    assert cal.categories["h"].threshold == pytest.approx(0.5)
    assert cal.info["held_at_policy"] == {"h": 2} and cal.info["reached"] is False
    # With enough positives to show the raise costs nothing, it is made.
    cal = fit_thresholds(
        scores, labels, {"a": 0.5, "h": 0.5}, target_benign_rate=0.01, min_positives=2
    )
    assert cal.apply({"a": 0.1, "h": 0.7})["h"] < 0.5 < cal.apply({"a": 0.1, "h": 0.9})["h"]
    assert cal.info["reached"] is True and cal.info["held_at_policy"] == {}


def test_no_raise_loses_more_than_the_recall_budget() -> None:
    """Harmless alarms scored among the positives: clearing them would cost half the
    category's recall; the budget (3% of its positives) stops the raise short."""
    rng = np.random.default_rng(3)
    pos = [float(x) for x in rng.uniform(0.6, 0.9, size=40)]
    scores = [{"a": p} for p in pos] + [{"a": 0.75}] * 5 + [{"a": 0.1}] * 100
    labels = [["a"]] * 40 + [[]] * 105
    cal = fit_thresholds(scores, labels, {"a": 0.5}, target_benign_rate=0.0)
    kept = sum(p >= cal.categories["a"].threshold for p in pos) / len(pos)
    assert kept >= 0.97 and cal.info["reached"] is False
    assert cal.info["average_recall_after"] >= 0.9


def test_a_per_category_budget_spends_only_its_own_share() -> None:
    """Two categories each with harmless alarms among their positives: a mapping budget lets
    "a" spend 10% of its positives and "b" nothing (a category the chosen checkpoint already
    lost recall on), so only "a" rises."""
    scores, labels = [], []
    for cat, other in (("a", "b"), ("b", "a")):
        # One positive scored below the alarms: clearing them costs it (5% of 20).
        scores += [{cat: 0.58, other: 0.1}] + [
            {cat: 0.65 + 0.01 * i, other: 0.1} for i in range(19)
        ]
        labels += [[cat]] * 20
        scores += [{cat: 0.6, other: 0.1}] * 2  # harmless alarms inside the positives
        labels += [[]] * 2
    scores += [{"a": 0.1, "b": 0.1}] * 60
    labels += [[]] * 60
    cal = fit_thresholds(
        scores,
        labels,
        {"a": 0.5, "b": 0.5},
        target_benign_rate=0.0,
        max_recall_loss={"a": 0.1, "b": 0.0},
    )
    assert 0.6 < cal.categories["a"].threshold < 0.65
    assert cal.categories["b"].threshold == pytest.approx(0.5)
    assert cal.info["max_recall_loss"] == {"a": 0.1, "b": 0.0}
    # With one scalar budget of 10%, both rise.
    cal = fit_thresholds(
        scores, labels, {"a": 0.5, "b": 0.5}, target_benign_rate=0.0, max_recall_loss=0.1
    )
    assert cal.categories["a"].threshold > 0.6 and cal.categories["b"].threshold > 0.6


def test_too_few_rows_or_no_harmless_row_is_refused() -> None:
    with pytest.raises(ValueError, match="harmless"):
        fit_thresholds([{"a": 0.9}] * 40, [["a"]] * 40, {"a": 0.5})
    with pytest.raises(ValueError, match="rows"):
        fit_thresholds([{"a": 0.9}] * 5, [[]] * 5, {"a": 0.5})


def test_saved_beside_a_model_and_read_back(tmp_path) -> None:
    scores, labels = _rows(0)
    cal = fit_thresholds(scores, labels, {"a": 0.5, "b": 0.5})
    cal.save(tmp_path)
    again = load_thresholds(None, tmp_path / "nothing-here", tmp_path)
    assert again is not None and again.to_dict() == cal.to_dict()
    assert load_thresholds(tmp_path / "nothing-here") is None
    (tmp_path / THRESHOLDS_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="thresholds"):
        load_thresholds(tmp_path)


def test_the_backend_applies_stored_thresholds_and_keeps_them_without_a_registry_one(
    tiny_internvl, tmp_path, policy, items
) -> None:
    """The real backend over a tiny InternVL: with thresholds.json beside the weights every
    category's bar sits just above what it scored, so nothing is flagged; raw scores stay
    in the verdict's signals; an empty registry calibration does not drop the thresholds."""
    from model.loading import apply_calibration
    from model.transformers_backend import TransformersBackend

    plain = TransformersBackend(str(tiny_internvl), quant="none", device="cpu")
    assert plain.thresholds is None
    raw = plain.raw_scores(items[:2], policy)
    assert any(v.flagged for v in plain.score(items[:2], policy))  # random weights flag
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_internvl, model_dir)
    policy_t = {c.id: c.threshold for c in policy.categories}
    # Harmless validation rows a little above what these items score: every bar goes above.
    rows = [{c: min(0.99, p + 0.02) for c, p in r.items()} for r in raw] * 20
    rows += [{c: 0.0 for c in raw[0]}] * 5
    labels: list[list[str]] = [[]] * len(rows)
    for c in raw[0]:  # five true rows per category, above every bar: raises cost nothing
        rows += [{d: 0.999 if d == c else 0.0 for d in raw[0]}] * 5
        labels += [[c]] * 5
    cal = fit_thresholds(rows, labels, policy_t, target_benign_rate=0.0)
    assert cal.info["benign_rate_after"] == 0.0
    cal.save(model_dir)
    backend = TransformersBackend(str(model_dir), quant="none", device="cpu")
    verdicts = backend.score(items[:2], policy)
    assert all(v.flagged == [] for v in verdicts)
    assert all("raw_scores" in v.signals for v in verdicts)
    apply_calibration(backend, {})  # a registry version with no calibration of its own
    assert backend.score(items[:2], policy)[0].flagged == []
    assert json.loads((model_dir / THRESHOLDS_FILE).read_text())["method"] == "threshold"


def test_a_margin_counts_positives_just_above_a_raise_as_lost() -> None:
    """Harmless alarms at 0.80 and the lowest positive at 0.82: raising past the alarms loses
    no validation positive, but with a margin of 1 logit the positive at 0.82 counts as lost
    and a budget of none stops the raise."""
    scores = [{"a": 0.82}] + [{"a": 0.99}] * 39 + [{"a": 0.80}] * 3 + [{"a": 0.1}] * 60
    labels = [["a"]] * 40 + [[]] * 63
    free = fit_thresholds(scores, labels, {"a": 0.5}, target_benign_rate=0.0, max_recall_loss=0)
    assert 0.80 < free.categories["a"].threshold < 0.82
    held = fit_thresholds(
        scores, labels, {"a": 0.5}, target_benign_rate=0.0, max_recall_loss=0, margin=1.0
    )
    assert held.categories["a"].threshold == pytest.approx(0.5)
    assert held.info["margin"] == 1.0 and held.info["reached"] is False
