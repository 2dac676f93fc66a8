"""The demo's benign stage (training.demo_refine) on a tiny real InternVL: it trains on
harmless generated text with SynthMod replayed, writes per-category thresholds calibrated on
validation beside the weights, and reports the benign flag rate on text of locales it never
drew, as served (thresholds applied)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from model.calibration import THRESHOLDS_FILE, load_thresholds
from storage.policy import load_policy
from storage.settings import DEFAULT_POLICY
from training.demo_refine import refine_demo
from training.pretrain import DemoPlan


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "internvl", "internvl", seed=0)


def test_refine_trains_calibrates_and_measures_unseen_text(tiny: Path, tmp_path: Path) -> None:
    policy = load_policy(DEFAULT_POLICY)
    plan = DemoPlan(n_benign=12, n_calibration=30, n_eval=16, image_size=96)
    plan = replace(plan, benign=replace(plan.benign, max_steps=2, batch_size=4))
    out = tmp_path / "demo"
    res = refine_demo(tiny, out, plan, policy)
    assert res.stage["stage"] == "benign" and res.stage["steps"] == 2
    cal = load_thresholds(out)
    assert cal is not None and cal.method == "threshold"
    assert cal.categories and set(cal.categories) <= set(policy.ids)
    info = json.loads((out / THRESHOLDS_FILE).read_text())["info"]
    assert info["rows"] == 60 and info["harmless_rows"] >= 30
    assert info["benign_rate_after"] <= plan.target_benign_rate or not info["reached"]
    for cid, c in cal.categories.items():  # never below the policy's own bar
        assert c.threshold >= policy.category(cid).threshold - 1e-6
    unseen = res.unseen_benign
    assert unseen["n"] == 16 and 0.0 <= unseen["benign_flag_rate"] <= 1.0
    assert {"faker:en_GB", "faker:zh_TW"} & set(unseen["sources"])


def test_refine_without_training_calibrates_the_base_as_it_is(tiny: Path, tmp_path: Path) -> None:
    """mode "calibrate" (the demo-open recipe): harmless text was mixed into mid, so the mid
    checkpoint is copied, calibrated and measured with no benign stage; "off" (the demo
    recipe) only copies it."""
    from safetensors.torch import load_file

    policy = load_policy(DEFAULT_POLICY)
    plan = DemoPlan(n_benign=12, n_calibration=20, n_eval=8, image_size=96)
    out = tmp_path / "demo"
    res = refine_demo(tiny, out, plan, policy, mode="calibrate")
    assert res.stage == {}
    a, b = load_file(tiny / "model.safetensors"), load_file(out / "model.safetensors")
    assert set(a) == set(b) and all(
        (a[k].to(b[k].dtype) == b[k]).all() for k in a
    )  # the same weights (stored in bf16)
    assert load_thresholds(out) is not None and res.unseen_benign["n"] == 8
    off = refine_demo(tiny, tmp_path / "off", plan, policy, mode="off")
    assert off.stage == off.calibration == off.unseen_benign == {}
    assert load_thresholds(tmp_path / "off") is None
