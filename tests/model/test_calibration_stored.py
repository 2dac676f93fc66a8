"""Calibration fitted on decided items is stored with the model version and applied on load."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, select

from model.live import read_target
from model.loading import apply_calibration, evict, load_backend
from storage.db import unit_of_work
from storage.decisions import record_decision
from storage.models import ModelVersion
from storage.policy import Policy
from storage.queue import record_prediction
from storage.settings import ModelSettings
from tests.storage._core_factories import make_item, verdict
from training.calibrate import calibrate_model


def _seed_overconfident(engine: Engine, name: str, n: int = 120) -> None:
    """Scores that say 0.95 for every weapons item but are right only ~60% of the time."""
    rng = random.Random(0)
    with unit_of_work(engine) as s:
        s.add(ModelVersion(name=name, uri="/nowhere", status="live"))
        for i in range(n):
            item = make_item(s, status="queued")
            confident = i % 2 == 0
            truth = rng.random() < (0.6 if confident else 0.1)
            score = 0.95 if confident else 0.05
            record_prediction(s, item, verdict({"weapons": score}, model_version=name))
            record_decision(
                s, item_id=item, categories=["weapons"] if truth else [], source="import"
            )


def test_calibration_lowers_ece_and_is_stored(engine: Engine, policy: Policy, db_url: str) -> None:
    _seed_overconfident(engine, "m-cal")
    with unit_of_work(engine) as s:
        result = calibrate_model(s, "m-cal", policy, actor="eng")
    assert result.items == 120
    assert result.ece_after < result.ece_before - 0.1
    with unit_of_work(engine) as s:
        stored = s.scalar(select(ModelVersion.calibration).where(ModelVersion.name == "m-cal"))
    assert stored["categories"]["weapons"]["method"] == "platt"
    assert stored["ece_after"] == result.ece_after
    target = read_target(db_url, "live")
    assert target is not None and target.name == "m-cal"
    assert target.calibration["categories"]["weapons"]["n"] == 120


def test_stored_calibration_changes_the_backends_scores(
    tiny_internvl: Path, policy: Policy, items
) -> None:
    backend = load_backend(ModelSettings(name=str(tiny_internvl), device="cpu", quant="none"))
    try:
        raw = backend.score(items[:1], policy)[0]
        stored = {
            "method": "platt",
            "categories": {"weapons": {"method": "platt", "a": 0.0, "b": 2.0, "n": 50}},
        }
        apply_calibration(backend, stored)
        cal = backend.score(items[:1], policy)[0]
        # a=0, b=2: the calibrated weapons score is sigmoid(2) whatever the raw score was.
        assert np.isclose(cal.scores["weapons"], 1 / (1 + np.exp(-2.0)))
        assert cal.signals["raw_scores"]["weapons"] == raw.scores["weapons"]
        assert cal.scores["drugs"] == raw.scores["drugs"]
    finally:
        apply_calibration(backend, None)
        evict(backend)
