"""Post-training keeps the checkpoint with the fewest false alarms on the validation split,
recall kept (training.checkpoint_choice): every save is evaluated through the real scorer on a
tiny real InternVL, the choice follows the rule, and the saved adapter is the chosen one."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.settings import ModelSettings, Settings
from tests.training.test_dataset import POLICY, small_corrected_dataset
from training.checkpoint_choice import Evaluation, ValidationChoice
from training.dataset import BuildOptions, load_items
from training.posttrain import PostTrainConfig, post_train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "internvl", "internvl", seed=0)


def _data(settings: Settings, tmp_path: Path, benign_validation: int = 0) -> Path:
    options = BuildOptions(
        golden_fraction=0.0,
        val_fraction=0.4,
        replay_ratio=0.0,
        balance_cap=0,
        benign_validation=benign_validation,
    )
    return small_corrected_dataset(settings, tmp_path, 30, 6, options)


def test_the_rule_prefers_fewer_false_alarms_within_the_recall_tolerance() -> None:
    choice = ValidationChoice(rows=[], processor=None, policy=POLICY, recall_tolerance=0.05)
    choice.evaluations = [
        Evaluation(2, 0.10, 0.50),
        Evaluation(4, 0.02, 0.78),  # fewest false alarms with recall close to the best
        Evaluation(6, 0.30, 0.80),
        Evaluation(8, 0.00, 0.60),  # none flagged, but recall bought back
    ]
    assert choice._chosen().step == 4
    choice.recall_tolerance = 0.25
    assert choice._chosen().step == 8


def test_a_checkpoint_that_forgets_a_category_is_passed_over() -> None:
    # Step 6 has the best recall and fewest false alarms, but lost 10 points of self-harm
    # against the model before training: the gate would refuse it, so step 4 is chosen.
    choice = ValidationChoice(rows=[], processor=None, policy=POLICY, recall_tolerance=0.05)
    choice.evaluations = [
        Evaluation(2, 0.10, 0.70, worst_category_drop=0.0),
        Evaluation(4, 0.05, 0.76, worst_category_drop=0.03),
        Evaluation(6, 0.01, 0.80, worst_category_drop=0.10),
    ]
    assert choice._chosen().step == 4
    # With no checkpoint keeping every category, the rule runs over those that forgot least
    # (the gate judges the worst category): step 4, not step 6's fewer false alarms.
    choice.evaluations[1].worst_category_drop = 0.05
    choice.evaluations[0].worst_category_drop = 0.2
    assert choice._chosen().step == 4
    # Tied least losses: the rest of the rule decides among them.
    choice.evaluations[2].worst_category_drop = 0.05
    assert choice._chosen().step == 6
    choice.evaluations[2].worst_category_drop = 0.10
    # Off: the category line is not looked at.
    choice.evaluations[0].worst_category_drop = 0.0
    choice.category_tolerance = None
    assert choice._chosen().step == 6


def test_thresholds_may_spend_half_the_tolerance_less_what_the_checkpoint_lost() -> None:
    choice = ValidationChoice(rows=[], processor=None, policy=POLICY, category_tolerance=0.04)
    assert choice.recall_budget(Evaluation(4, 0.1, 0.8)) is None  # no baseline yet
    ids = [c.id for c in POLICY.categories]
    a, b = ids[0], ids[1]
    choice.baseline = Evaluation(0, 0.2, 0.8, per_category={a: 0.9, b: 0.9})
    chosen = Evaluation(4, 0.1, 0.8, per_category={a: 0.9, b: 0.885})
    budget = choice.recall_budget(chosen)
    assert budget is not None and set(budget) == set(ids)
    assert budget[a] == pytest.approx(0.02)  # nothing lost: half of 0.04
    assert budget[b] == pytest.approx(0.005)  # 1.5 points lost already
    chosen.per_category[b] = 0.85  # lost more than half the tolerance: nothing left
    assert choice.recall_budget(chosen)[b] == 0.0
    choice.category_tolerance = None
    assert choice.recall_budget(chosen) is None


def test_post_training_restores_the_chosen_checkpoint(
    tiny: Path, sqlite_settings: Settings, tmp_path: Path
) -> None:
    data = _data(sqlite_settings, tmp_path)
    val = load_items(data, "validation")
    assert val and any(not r["labels"] for r in val)
    cfg = PostTrainConfig(
        method="sft", lr=3e-2, max_steps=6, batch_size=8, save_steps=2, lora_r=8, logging_steps=1
    )
    res = post_train(str(tiny), data, tmp_path / "run", cfg, policy=POLICY)
    record = res.metrics["checkpoint_choice"]
    evals = record["evaluations"]
    assert [e["step"] for e in evals] == [2, 4, 6]
    # The baseline is the model before any step, and each evaluation's worst category drop
    # is measured against it.
    assert record["baseline"]["step"] == 0
    for e in evals:
        drops = [
            record["baseline"]["per_category"][c] - r
            for c, r in e["per_category"].items()
            if c in record["baseline"]["per_category"]
        ]
        assert e["worst_category_drop"] == pytest.approx(max(drops, default=0.0))
    least = min(e["worst_category_drop"] for e in evals)
    kept = [e for e in evals if e["step"] in record["kept_categories"]] or [
        e for e in evals if e["worst_category_drop"] <= least + 1e-9
    ]
    best_recall = max(e["average_recall"] for e in kept)
    ok = [e for e in kept if e["average_recall"] >= best_recall - cfg.choice_recall_tolerance]
    expected = min(ok, key=lambda e: (e["benign_flag_rate"], -e["step"]))
    assert record["chosen_step"] == expected["step"]
    # The adapter written is that checkpoint: served, it flags the harmless validation rows
    # at the rate recorded for it.
    import io

    from PIL import Image

    from model.backends import ScoringInput
    from model.loading import load_backend
    from training.evaluate import benign_flag_rate

    backend = load_backend(
        ModelSettings(
            name=str(tiny), adapter=res.adapter, device="cpu", quant="none", dtype="float32"
        )
    )
    verdicts = backend.score(
        [
            ScoringInput(
                image=Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB"),
                text=r.get("text"),
                ocr_text=r["ocr_text"],
            )
            for r in val
        ],
        POLICY,
    )
    rate = benign_flag_rate([r["labels"] for r in val], [v.flagged for v in verdicts])
    assert rate == pytest.approx(expected["benign_flag_rate"], abs=0.15)


def test_off_keeps_the_last_checkpoint(tiny: Path, sqlite_settings: Settings, tmp_path: Path):
    data = _data(sqlite_settings, tmp_path)
    cfg = PostTrainConfig(method="sft", max_steps=2, batch_size=8, save_steps=1)
    off = PostTrainConfig(**{**cfg.__dict__, "choose_checkpoint": False})
    res = post_train(str(tiny), data, tmp_path / "run", off, policy=POLICY)
    assert "checkpoint_choice" not in res.metrics


def test_thresholds_fitted_on_validation_are_written_beside_the_adapter_and_served(
    tiny: Path, sqlite_settings: Settings, tmp_path: Path
) -> None:
    """`threshold_benign_rate`: per-category thresholds fitted on the chosen checkpoint's
    validation scores go beside the adapter (thresholds.json); the served candidate applies
    them and flags the harmless validation rows at the rate the fit reports."""
    import io

    from PIL import Image

    from model.backends import ScoringInput
    from model.calibration import THRESHOLDS_FILE
    from model.loading import load_backend
    from training.evaluate import benign_flag_rate

    data = _data(sqlite_settings, tmp_path, benign_validation=16)  # 20+ rows to fit on
    val = load_items(data, "validation")
    assert len(val) >= 20
    cfg = PostTrainConfig(
        method="sft",
        lr=3e-2,
        max_steps=2,
        batch_size=8,
        save_steps=2,
        lora_r=8,
        threshold_benign_rate=0.0,
    )
    res = post_train(str(tiny), data, tmp_path / "run", cfg, policy=POLICY)
    fitted = res.metrics["thresholds"]
    info = fitted.pop("info")
    assert (Path(res.adapter) / THRESHOLDS_FILE).is_file()
    policy_t = {c.id: c.threshold for c in POLICY.categories}
    assert fitted.keys() == policy_t.keys()
    assert all(fitted[c] >= policy_t[c] for c in fitted)  # only ever raised
    assert info["benign_rate_after"] <= info["benign_rate_before"]
    assert info["harmless_rows"] == sum(1 for r in val if not r["labels"])

    backend = load_backend(
        ModelSettings(
            name=str(tiny), adapter=res.adapter, device="cpu", quant="none", dtype="float32"
        )
    )
    assert backend.thresholds is not None
    verdicts = backend.score(
        [
            ScoringInput(
                image=Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB"),
                text=r.get("text"),
                ocr_text=r["ocr_text"],
            )
            for r in val
        ],
        POLICY,
    )
    rate = benign_flag_rate([r["labels"] for r in val], [v.flagged for v in verdicts])
    assert rate == pytest.approx(info["benign_rate_after"], abs=0.15)
    # Without the setting, no thresholds file: the policy's thresholds serve.
    plain = post_train(
        str(tiny), data, tmp_path / "run0", PostTrainConfig(**{**cfg.__dict__,
        "threshold_benign_rate": None}), policy=POLICY
    )  # fmt: skip
    assert not (Path(plain.adapter) / THRESHOLDS_FILE).exists()
    assert "thresholds" not in plain.metrics
