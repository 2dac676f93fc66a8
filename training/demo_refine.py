"""The demo's last stage: harmless text from other generators, then calibrated thresholds.

After `pre` and `mid` (SynthMod only) the demo flags much plain text it never saw: SynthMod's
benign bank is small, so "unlike a benign phrase" reads as "harmful" (issue 18: "Garden party
at 3 pm" flagged as drugs). This stage
1. trains on harmless text from Faker, Mimesis and wordfreq (`training.benign`, en/ko/zh) drawn
   by SynthMod's renderer, mixed with as many SynthMod training samples (replay, so harmful
   recall stays), every category asked for every image (negatives teach precision);
2. scores a validation set (SynthMod samples of another seed + harmless text of another seed)
   and fits per-category thresholds for a target benign flag rate
   (`model.calibration.fit_thresholds`), written as `thresholds.json` beside the weights,
   where the backend applies them at scoring time;
3. measures the benign flag rate on harmless text of locales and a seed that training and
   calibration never used (`training.benign.heldout_benign_texts`), for the model card.

Run: python -m training.demo_refine --base assets/model/demo --out /tmp/demo-new
     warden train demo --out DIR (pre -> mid -> what the recipe's `benign_stage` says: the
     demo recipe ships mid as it is; `train` is this stage; `calibrate` fits thresholds only)
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from storage.policy import Policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineResult:
    stage: dict[str, Any]
    calibration: dict[str, Any]
    unseen_benign: dict[str, Any]
    seconds: float


def _render_texts(texts: list[Any], seed: int, size: int) -> list[Any]:
    from training.benign import benign_specs
    from training.pretrain import _render

    return _render(benign_specs(texts, seed, size))


def raw_scores(model_dir: Path, samples: list[Any], policy: Policy) -> list[dict[str, float]]:
    """Uncalibrated P(Yes) per category of `samples` (their text as the OCR hint)."""
    from model.backends import ScoringInput
    from model.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(model_dir), quant="none", device="cpu")
    items = [ScoringInput(image=s.image, ocr_text=s.ocr_text, text=s.text) for s in samples]
    return backend.raw_scores(items, policy)


def flag_rate(model_dir: Path, samples: list[Any], policy: Policy) -> tuple[float, list[int]]:
    """Share of `samples` flagged by the model as it serves (thresholds applied), and which."""
    from model.backends import ScoringInput
    from model.loading import load_backend
    from storage.settings import ModelSettings

    backend = load_backend(ModelSettings(name=str(model_dir), device="cpu", quant="none"))
    items = [ScoringInput(image=s.image, ocr_text=s.ocr_text, text=s.text) for s in samples]
    verdicts = backend.score(items, policy)
    hit = [i for i, v in enumerate(verdicts) if v.flagged]
    return len(hit) / max(1, len(samples)), hit


def refine_demo(
    base: Path, out: Path, plan: Any, policy: Policy, *, mode: str = "train"
) -> RefineResult:
    """Run the benign stage on `base` into `out`, calibrate thresholds, measure unseen text.
    mode "calibrate": `base` is copied to `out` as it is, then calibrated and measured;
    "off": only copied (no thresholds, nothing measured)."""
    from storage.errors import WardenError
    from training.benign import benign_texts
    from training.pretrain import (
        BENIGN_STAGES,
        _render,
        augment_specs,
        demo_specs,
        save_bf16,
        train_stage,
    )

    if mode not in BENIGN_STAGES:
        raise WardenError(f"mode {mode!r}: expected one of {', '.join(BENIGN_STAGES)}")
    t0 = time.perf_counter()
    seed = plan.seed
    stage: Any = None
    if mode == "train":
        harmless = _render_texts(benign_texts(plan.n_benign, seed), seed, plan.image_size)
        replay = _render(augment_specs(demo_specs(plan, "train", plan.n_benign), plan))
        stage = train_stage(base, harmless + replay, policy, replace(plan.benign, seed=seed), out)
    else:
        shutil.copytree(base, out, dirs_exist_ok=True)
    save_bf16(out)
    if mode == "off":
        return RefineResult({}, {}, {}, round(time.perf_counter() - t0, 1))
    calibration, unseen = calibrate_demo(out, plan, policy)
    return RefineResult(
        stage=asdict(stage) if stage is not None else {},
        calibration=calibration,
        unseen_benign=unseen,
        seconds=round(time.perf_counter() - t0, 1),
    )


def calibrate_demo(out: Path, plan: Any, policy: Policy) -> tuple[dict[str, Any], dict[str, Any]]:
    """Thresholds for `out` fitted on a validation split and saved beside its weights, and the
    benign flag rate (thresholds applied) on harmless text of locales training never drew."""
    from model.calibration import fit_thresholds
    from training.benign import benign_texts, heldout_benign_texts
    from training.pretrain import _render, demo_specs

    seed = plan.seed
    # Validation: SynthMod of another seed (the demo's "calibration" split) and harmless
    # text of another seed; neither is trained on.
    val = _render(demo_specs(plan, "calibration", plan.n_calibration))
    val += _render_texts(benign_texts(plan.n_calibration, seed + 1), seed + 1, plan.image_size)
    scores = raw_scores(out, val, policy)
    cal = fit_thresholds(
        scores,
        [s.labels for s in val],
        {c.id: c.threshold for c in policy.categories},
        target_benign_rate=plan.target_benign_rate,
    )
    cal.save(out)
    unseen_texts = heldout_benign_texts(plan.n_eval, seed)
    unseen = _render_texts(unseen_texts, seed + 2, plan.image_size)
    rate, hit = flag_rate(out, unseen, policy)
    report = {
        "benign_flag_rate": round(rate, 4),
        "n": len(unseen),
        "sources": sorted({t.source.rsplit(":", 1)[0] for t in unseen_texts}),
        "examples_flagged": [unseen_texts[i].text for i in hit[:8]],
    }
    log.info("demo: unseen benign flag rate %.3f (n=%d)", rate, len(unseen))
    return cal.to_dict(), report


def main(argv: list[str] | None = None) -> None:
    """Refine an existing demo checkpoint (`--base`) into `--out`, with its card updated."""
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY
    from training.pretrain import DemoPlan, evaluate_demo
    from training.recipes import load_recipe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--recipe", default="demo")
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--n-calibration", type=int, default=None)
    p.add_argument("--n-eval", type=int, default=None)
    p.add_argument("--target-benign-rate", type=float, default=None)
    p.add_argument(
        "--calibrate-only", action="store_true", help="--out is trained already: calibrate it."
    )
    p.add_argument("--no-eval", action="store_true", help="Keep the base card's SynthMod eval.")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    plan = load_recipe(a.recipe).demo or DemoPlan()
    if a.max_steps is not None:
        plan = replace(plan, benign=replace(plan.benign, max_steps=a.max_steps))
    if a.n_calibration is not None:
        plan = replace(plan, n_calibration=a.n_calibration)
    if a.n_eval is not None:
        plan = replace(plan, n_eval=a.n_eval)
    if a.target_benign_rate is not None:
        plan = replace(plan, target_benign_rate=a.target_benign_rate)
    policy = load_policy(DEFAULT_POLICY)
    card = json.loads((a.base / "demo_card.json").read_text())
    if a.calibrate_only:
        calibration, unseen = calibrate_demo(a.out, plan, policy)
        trained = json.loads((a.out / "warden_training.json").read_text())["stages"][-1]
        # A checkpoint calibrated without the benign stage keeps its card's stages.
        stage = trained["result"] if trained["result"]["stage"] == "benign" else None
        res = RefineResult(stage or {}, calibration, unseen, 0.0)
    else:
        res = refine_demo(a.base, a.out, plan, policy)
    if res.stage:
        card["stages"] = [s for s in card["stages"] if s.get("stage") != "benign"] + [res.stage]
    card["plan"] = asdict(plan)
    card["calibration"] = res.calibration
    card["unseen_benign"] = res.unseen_benign
    for name in ("chat_template.jinja", "processor_config.json"):
        if (a.base / name).exists() and not (a.out / name).exists():
            shutil.copy(a.base / name, a.out / name)
    from training.pretrain import DEFAULT_DEMO_WORK

    if not a.no_eval:
        card["eval"] = evaluate_demo(a.out, plan, a.work or DEFAULT_DEMO_WORK, policy)
    else:
        card["eval_note"] = (
            "eval: the SynthMod figures of the checkpoint before the benign stage (not re-run); "
            "bench/demo_benign.py and bench/demo_foreign.py measure this one"
        )
    (a.out / "demo_card.json").write_text(json.dumps(card, indent=2, default=str))
    print(json.dumps({"unseen_benign": res.unseen_benign, "cal": res.calibration.get("info")}))


if __name__ == "__main__":
    main()
