"""Can a last "benign" stage make the demo stop flagging harmless text it never saw and still
catch harmful text it never saw? Variants of that stage, in one run.

Issue 18 asks the demo base for benign flagged <= 3% on plain harmless text it never saw and
harmful caught >= 0.80 on plain paraphrases. `training.demo_refine` trains the shipped demo on
harmless text from Faker, Mimesis and wordfreq with SynthMod samples replayed, then fits
thresholds. This bench trains each variant of that stage from the shipped checkpoint and
measures it *without* fitted thresholds (the stage's own effect), on
- SynthMod's evaluation sets: in-distribution, phrase families never trained on
  (`unseen_families`, the selection criterion a variant may be chosen by) and leetspeak;
- bench/demo_benign.py's held-out texts (never used for choosing): harmless texts of locales
  and seeds no training step drew, and plain harmful paraphrases written apart from SynthMod;
  with the most of them any per-category thresholds could catch at a given share of harmless
  text flagged (`best_thresholds`, chosen on those texts: a bound no calibration can beat).

Variants: the recipe's stage as is; embeddings frozen (the MiniLM word vectors that carry the
demo to unseen words stay put); a lower learning rate for half the steps; three SynthMod
samples replayed per harmless one for twice the steps; half the replayed SynthMod samples inside
a harmless generator text (`carrier_half`), and that with 30% of the words of the replayed
harmful phrases swapped for near words by all-MiniLM-L6-v2 (`synonyms_carrier`).

Run: .venv/bin/python bench/demo_refine_grid.py [--work DIR] [--n 120] [--only NAME ...]
     [--results PATH]   (default bench/results/demo_refine_grid.json, with provenance)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import provenance  # noqa: E402

RESULTS_NAME = "demo_refine_grid.json"

# name -> changes to the recipe's benign stage (StageConfig fields) and the replay factor.
VARIANTS: dict[str, dict[str, Any]] = {
    "recipe": {},
    "embeddings_frozen": {
        "train_modules": (
            "model.multi_modal_projector",
            "model.language_model.layers",
            "model.language_model.norm",
        )
    },
    "lr_2e-4_40_steps": {"lr": 2e-4, "max_steps": 40},
    "replay_3x_160_steps": {"replay": 3.0, "max_steps": 160},
    # Half the replayed SynthMod samples carry a harmless generator text before or after
    # their phrase (labels unchanged), so "reads like Faker" cannot stand for "harmless".
    "carrier_half": {"carrier": 0.5},
    # And 30% of the words of the replayed harmful phrases swapped for one of their nearest
    # words by all-MiniLM-L6-v2 (`training.lexicon.with_synonyms`): harm in other words.
    "synonyms_carrier": {"synonyms": 0.3, "carrier": 0.5},
}


def train_variant(base: Path, out: Path, plan: Any, change: dict[str, Any], policy: Any) -> float:
    """The benign stage of `training.demo_refine` with `change` applied, into `out`; seconds."""
    from training.benign import benign_texts
    from training.demo_refine import _render_texts
    from training.pretrain import _render, augment_specs, demo_specs, save_bf16, train_stage

    change = dict(change)
    replay_factor = float(change.pop("replay", 1.0))
    # Carriers and synonym swaps on the replay, as the plan's own fields would apply them.
    augment = replace(
        plan,
        carrier=float(change.pop("carrier", 0.0)),
        synonyms=float(change.pop("synonyms", 0.0)),
    )
    stage = replace(plan.benign, seed=plan.seed, **change)
    t0 = time.perf_counter()
    harmless = _render_texts(benign_texts(plan.n_benign, plan.seed), plan.seed, plan.image_size)
    specs = demo_specs(plan, "train", round(replay_factor * plan.n_benign))
    replay = _render(augment_specs(specs, augment))
    train_stage(base, harmless + replay, policy, stage, out)
    save_bf16(out)
    for name in ("chat_template.jinja", "processor_config.json"):
        if (base / name).exists() and not (out / name).exists():
            shutil.copy(base / name, out / name)
    return round(time.perf_counter() - t0, 1)


def measure(model: Path, plan: Any, work: Path, policy: Any, n: int) -> dict[str, Any]:
    from bench import demo_benign
    from training.pretrain import evaluate_demo

    ev = evaluate_demo(model, plan, work / "eval", policy)
    held = demo_benign.measure(str(model), n)
    return {
        "synthmod_average_recall": {k: round(v["average_recall"], 4) for k, v in ev.items()},
        "benign_flagged": held["benign_flagged"],
        "benign_n": held["benign_n"],
        "harmful_caught": held["harmful_caught"],
        "harmful_n": held["harmful_n"],
        "harmful_caught_by_category": held["harmful_caught_by_category"],
        "benign_flagged_examples": held["benign_flagged_examples"][:6],
        "best_thresholds": held["best_thresholds"],
    }


def main(argv: list[str] | None = None) -> None:
    from model.calibration import THRESHOLDS_FILE
    from model.loading import DEMO_MODEL_DIR
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY
    from training.pretrain import DemoPlan
    from training.recipes import load_recipe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, default=DEMO_MODEL_DIR)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--n", type=int, default=120, help="Generated harmless texts (never seen).")
    p.add_argument("--only", nargs="*", choices=sorted(VARIANTS), default=None)
    p.add_argument("--results", default=None, help=f"Default: bench/results/{RESULTS_NAME}.")
    a = p.parse_args(argv)
    out_path = provenance.results_or_exit(p, a.results, RESULTS_NAME)
    prov = provenance.start(__file__, argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="warden-refine-grid-"))
    policy = load_policy(DEFAULT_POLICY)
    plan = load_recipe("demo").demo or DemoPlan()
    if (a.base / THRESHOLDS_FILE).exists():
        p.error(f"{a.base} carries fitted thresholds: measure a checkpoint without them")
    rows: dict[str, Any] = {
        "shipped demo": {"train_s": 0.0} | measure(a.base, plan, work, policy, a.n)
    }
    for name, change in VARIANTS.items():
        if a.only and name not in a.only:
            continue
        out = work / name
        seconds = train_variant(a.base, out, plan, change, policy)
        rows[name] = {
            "change": {k: list(v) if isinstance(v, tuple) else v for k, v in change.items()},
            "train_s": seconds,
        } | measure(out, plan, work, policy, a.n)
        print(name, {k: rows[name][k] for k in ("benign_flagged", "harmful_caught")}, flush=True)
    payload = {
        "hardware": prov.summary,
        "stage": {
            "lr": plan.benign.lr,
            "max_steps": plan.benign.max_steps,
            "n_benign": plan.n_benign,
            "train_modules": list(plan.benign.train_modules),
        },
        "aim": {"benign_flagged_at_most": 0.03, "harmful_caught_at_least": 0.80},
        "variants": rows,
    }
    provenance.write_results(out_path, payload, prov)
    print(f"{'variant':22} {'benign flagged':>15} {'harmful caught':>15} {'unseen families':>16}")
    for name, r in rows.items():
        unseen = r["synthmod_average_recall"].get("unseen_families", float("nan"))
        print(f"{name:22} {r['benign_flagged']:15.3f} {r['harmful_caught']:15.3f} {unseen:16.3f}")
    print(f"-> {out_path}")


if __name__ == "__main__":
    main()
