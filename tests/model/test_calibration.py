"""Per-category calibration: lowers ECE on held-out synthetic data, serialises, stays monotone."""

from __future__ import annotations

import json

import numpy as np

from model.calibration import (
    Calibration,
    expected_calibration_error,
    fit_calibration,
    synthetic_check,
)


def test_calibration_lowers_ece_on_held_out_synthetic_scores():
    result = synthetic_check(n=2000, seed=0)
    assert result["ece_raw"] > 0.08
    assert result["ece_platt"] < result["ece_raw"] / 3
    assert result["ece_temperature"] < result["ece_raw"]


def test_round_trip_through_a_json_dict_gives_the_same_scores():
    rng = np.random.default_rng(1)
    scores = [{"a": float(p), "b": float(q)} for p, q in rng.random((200, 2))]
    labels = [["a"] if s["a"] > 0.7 else [] for s in scores]
    cal = fit_calibration(scores, labels, method="temperature")
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again.apply(scores[0]) == cal.apply(scores[0])
    # "b" never positive: left as identity, with the reason recorded.
    assert again.categories["b"].method == "identity" and "positive" in again.categories["b"].note
    assert again.apply({"b": 0.42, "unknown": 0.3}) == {"b": 0.42, "unknown": 0.3}


def test_calibrated_scores_keep_the_ranking():
    rng = np.random.default_rng(2)
    p = rng.random(300)
    labels = [["a"] if rng.random() < x**2 else [] for x in p]
    cal = fit_calibration([{"a": float(x)} for x in p], labels, method="platt")
    out = [cal.apply({"a": float(x)})["a"] for x in sorted(p)]
    assert all(b >= a for a, b in zip(out, out[1:], strict=False))


def test_ece_of_a_perfect_predictor_is_small_and_of_a_bad_one_large():
    rng = np.random.default_rng(3)
    p = rng.random(20000)
    y = rng.random(20000) < p
    assert expected_calibration_error(p, y) < 0.02
    assert expected_calibration_error(1 - p, y) > 0.3
