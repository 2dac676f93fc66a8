"""One turn of Warden's loop, measured: serve -> correct -> build dataset -> post-train -> gate.

Starts from the demo model (assets/model/demo), which never saw the adversarial variant
`leetspeak` (withheld from its training). The turn:
  1. ingest N leetspeak SynthMod images into a fresh SQLite ledger; score them with the live
     model (the rendered text stands in for RapidOCR's, as in the demo's evaluation);
  2. evaluate the live model: recall on a held-out leetspeak set, average recall on the original
     (in-distribution) set, and on phrase families the demo never saw;
  3. record one analyst decision per item through `storage.decisions.record_decision`
     (source=loop, ground truth standing in for the analyst); with `--stream M`, M items are
     ingested and scored and Warden's annotation routing (`training.labelstudio.select`) picks
     the N that analysts see, as the workbench does, instead of a random N;
  4. `build_dataset` with ~30% replay of the original SynthMod data; it learns the character
     swaps the corrections show (training.substitutions) and writes a reader for them
     (model.reading), through which the SFT prompts are read (`--no-reading`: off);
  5. `post_train` a LoRA adapter (TRL SFTTrainer + PEFT) on it; the reader goes with it;
  6. evaluate the candidate on the same sets, run the gate, promote; then, outside the turn's
     time, the live model with the reader and no adapter (how much each part gives).
Prints recall on the new variant and average recall on the original categories before and after,
the new variant's recall split by whether an analyst corrected an item of the same phrase
template (what the turn memorised vs what carried over), per-category deltas and the time of
each stage; writes bench/results/loop.json (or --results: a .json file or a folder) with its
provenance (bench/provenance.py).

Everything the turn writes stays under --work (default $TMPDIR/warden-loop): the evaluation sets
are rendered there too (kept across runs with --keep), and their rendering is outside the turn's
time, as it was when they came from the demo's cache. Results go to --results only.

Run: .venv/bin/python bench/loop.py [--n 300] [--stream 1200] [--no-reading] [--work DIR]
     [--keep] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
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

RESULTS_NAME = "loop.json"
WORK_MARK = ".warden-loop-work"  # only a folder carrying it is wiped without --keep
log = logging.getLogger("bench.loop")


class Clock:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    def run(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.stages[name] = round(time.perf_counter() - t0, 1)
        print(f"[{self.stages[name]:7.1f} s] {name}", flush=True)
        return out


def _write_pool(specs: list[Any], out: Path) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Render the correction pool: images + an unlabeled ingest manifest; truth kept aside."""
    from training.synth import render_sample

    (out / "images").mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict[str, Any]] = {}
    lines = []
    for spec in specs:
        image, rec = render_sample(spec)
        name = f"images/{spec.index:06d}.png"
        image.save(out / name, format="PNG", compress_level=1)
        truth[Path(name).name] = rec
        lines.append(json.dumps({"path": name, "text": rec["text"] or ""}))
    manifest = out / "ingest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, truth


def _score_and_record(
    engine: Any, settings: Any, backend: Any, policy: Any, truth: dict[str, dict[str, Any]]
) -> int:
    """Score every ingested item with the live model and store the predictions."""
    from PIL import Image
    from sqlalchemy import select

    from model.backends import ScoringInput
    from storage.blobs import BlobStore
    from storage.db import unit_of_work
    from storage.models import Item
    from storage.queue import record_prediction

    store = BlobStore(settings.blobs_path)
    with unit_of_work(engine) as s:
        items = [
            (i.id, i.view_sha256 or i.blob_sha256, i.filename, i.text)
            for i in s.scalars(select(Item).order_by(Item.id))
        ]
    inputs = []
    for _id, sha, filename, text in items:
        rec = truth[Path(filename).name]
        with Image.open(store.path(sha)) as im:
            inputs.append(
                ScoringInput(
                    image=im.convert("RGB"),
                    text=text or None,
                    ocr_text=rec["rendered_text"],
                    item_id=_id,
                )
            )
    verdicts = backend.score(inputs, policy)
    with unit_of_work(engine) as s:
        for (item_id, *_), inp, v in zip(items, inputs, verdicts, strict=True):
            record_prediction(s, item_id, replace(v, ocr_text=inp.ocr_text))
    return len(items)


def _pick(engine: Any, policy: Any, budget: int) -> set[int]:
    """The items Warden routes to annotators (training.labelstudio.select: disagreement,
    uncertainty, diversity and a 10% random audit), from the live model's predictions."""
    from storage.db import unit_of_work
    from training.labelstudio.select import select_items

    with unit_of_work(engine) as s:
        return {p.item_id for p in select_items(s, policy, project_id=0, budget=budget, seed=0)}


def _decide(
    engine: Any, policy: Any, truth: dict[str, dict[str, Any]], only: set[int] | None = None
) -> tuple[int, set[str]]:
    """One analyst decision per item (or per item in `only`); returns how many were recorded
    and the phrase families they cover."""
    from sqlalchemy import select

    from storage.db import unit_of_work
    from storage.decisions import record_decision
    from storage.models import Item

    n, families = 0, set()
    with unit_of_work(engine) as s:
        for item in s.scalars(select(Item).order_by(Item.id)).all():
            if only is not None and item.id not in only:
                continue
            rec = truth[Path(item.filename).name]
            record_decision(
                s,
                item_id=item.id,
                categories=list(rec["labels"]),
                source="loop",
                reviewer="loop-analyst",
                policy=policy,
                external_ref=f"loop:{rec['external_id']}",
            )
            n += 1
            families.add(rec["family"])
    return n, families


def _evaluate(backend: Any, policy: Any, sets: dict[str, Path], name: str) -> dict[str, Any]:
    from training.evaluate import evaluate_backend, manifest_key, read_manifest

    out = {}
    for set_name, manifest in sets.items():
        rep = evaluate_backend(
            backend,
            policy,
            read_manifest(manifest, policy),
            model_name=name,
            eval_key=manifest_key(manifest),
        )
        out[set_name] = rep
    return out


def _combined(reports: dict[str, Any], policy: Any, name: str) -> Any:
    """One report over the in-distribution (retention) and leetspeak sets, from their scores."""
    from training.evaluate import EvalRow, compute_report

    rows, scores = [], []
    for set_name in ("in_distribution", "leetspeak"):
        for p in reports[set_name].predictions:
            rows.append(
                EvalRow(
                    Path(p["path"]),
                    tuple(p["labels"]),
                    variant=p["variant"],
                    family=p["family"],
                    retention=set_name == "in_distribution",
                )
            )
            scores.append(p["scores"])
    key = "gate:" + "+".join(reports[s].eval_key for s in ("in_distribution", "leetspeak"))
    return compute_report(name, rows, scores, policy, eval_key=key)


def _reader_only(
    ds: Any, res: Any, model_dir: Path, work: Path, policy: Any, sets: Any, clock: Clock
) -> dict[str, float] | None:
    """Ablation outside the turn's time: the live model with the candidate's reader and no
    adapter, which says how much of the gain is the reading and how much the post-training."""
    from model.loading import load_backend
    from model.reading import READING_FILE
    from storage.settings import ModelSettings

    if not ds.card.get("reading"):
        return None
    folder = work / "live-with-reader"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for f in model_dir.iterdir():
        (folder / f.name).symlink_to(f.resolve())
    shutil.copy(Path(res.adapter) / READING_FILE, folder / READING_FILE)
    backend = load_backend(
        ModelSettings(name=str(folder), device="cpu", quant="none"), version_name="demo-v0+reader"
    )
    wanted = {k: sets[k] for k in ("leetspeak", "in_distribution")}
    reports = clock.run("ablation: live + reader", _evaluate, backend, policy, wanted, "reader")
    return {k: r.average_recall or 0.0 for k, r in reports.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="One measured turn of the Warden loop.")
    p.add_argument("--n", type=int, default=300, help="Analyst corrections (aim: 300)")
    p.add_argument(
        "--stream",
        type=int,
        default=0,
        help="Ingest and score this many leetspeak items and let Warden's annotation routing "
        "pick the --n that analysts correct (default: correct every item, a random sample).",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "warden-loop",
        help="Scratch folder for everything the turn writes (wiped first unless --keep).",
    )
    p.add_argument("--model", type=Path, default=None, help="Default: assets/model/demo.")
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--replay-ratio", type=float, default=0.3)
    p.add_argument(
        "--reading",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Learn a reader for the character swaps the corrections show (the dataset "
        "build's default); --no-reading measures post-training alone.",
    )
    p.add_argument(
        "--negatives",
        type=int,
        default=None,
        help="'No' rows kept per corrected image (default: the demo recipe's post section).",
    )
    p.add_argument(
        "--replay-all-negatives",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Keep every 'No' row of replay images (default: the demo recipe's post section).",
    )
    p.add_argument("--lora-r", type=int, default=None)
    p.add_argument(
        "--tune-content-tokens",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Train the embeddings of the corrections' content tokens (default: the recipe).",
    )
    p.add_argument("--keep", action="store_true", help="Keep an existing work folder.")
    p.add_argument(
        "--results",
        default=None,
        help=f"Results .json file or folder (default: bench/results/{RESULTS_NAME}).",
    )
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be at least 1")
    if a.stream and a.stream <= a.n:
        p.error(f"--stream ({a.stream}) must exceed --n ({a.n}): routing picks --n out of it")
    work = a.work.resolve()
    if work.is_file():
        p.error(f"--work {work} is a file")
    if work.is_dir() and not a.keep and any(work.iterdir()) and not (work / WORK_MARK).exists():
        p.error(
            f"--work {work} is not empty and was not made by bench/loop.py; not wiping it "
            "(empty it yourself, or pass --keep to reuse it)"
        )
    try:
        results_path = provenance.resolve_results(a.results, RESULTS_NAME)
    except ValueError as exc:
        p.error(str(exc))
    prov = provenance.start(__file__, argv)
    logging.basicConfig(level=logging.WARNING)
    # Hugging Face datasets caches under ~/.cache unless told otherwise.
    os.environ.setdefault("HF_DATASETS_CACHE", str(work / "hf-datasets-cache"))

    import torch

    from model.loading import DEMO_MODEL_DIR, load_backend
    from storage.db import make_engine, unit_of_work
    from storage.ingest import ingest_paths
    from storage.migrate import upgrade
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY, ModelSettings, Settings
    from training import registry
    from training.dataset import BuildOptions, build_dataset
    from training.evaluate import recall_by_families
    from training.posttrain import post_train, register_run
    from training.pretrain import (
        DemoPlan,
        demo_eval_sets,
        demo_specs,
        write_eval_set,
    )
    from training.recipes import load_recipe

    torch.set_num_threads(min(4, os.cpu_count() or 1))
    model_dir = Path(a.model or DEMO_MODEL_DIR)
    recipe = load_recipe("demo")
    plan: DemoPlan = recipe.demo
    policy = load_policy(DEFAULT_POLICY)
    if work.exists() and not a.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / WORK_MARK).touch()
    clock = Clock()

    # Evaluation sets: the same ones the demo card reports (same plan, same fingerprint),
    # rendered under --work; not part of the turn's time.
    sets = clock.run("render evaluation sets", demo_eval_sets, plan, work / "eval-sets")
    t_start = time.perf_counter()
    # The correction pool: leetspeak items from another seed than the leetspeak eval set.
    pool_specs = demo_specs(replace(plan, seed=plan.seed + 7), "leetspeak", max(a.n, a.stream))
    manifest, truth = clock.run("render correction pool", _write_pool, pool_specs, work / "pool")
    replay_specs = demo_specs(plan, "train", 600)  # the demo's own training distribution
    replay_manifest = clock.run(
        "render replay set", write_eval_set, replay_specs, work / "replay", retention=True
    )

    url = f"sqlite:///{work / 'warden.db'}"
    upgrade(url)
    settings = Settings(data_dir=work / "data", WARDEN_DATABASE_URL=url)
    engine = make_engine(url)
    rep = clock.run(
        "ingest", ingest_paths, engine, settings, [manifest], source="loop", policy=policy
    )
    live_settings = ModelSettings(name=str(model_dir), device="cpu", quant="none")
    with unit_of_work(engine) as s:
        registry.register_model(s, "demo-v0", str(model_dir), actor="bench", live=True)
    live = load_backend(live_settings, version_name="demo-v0")
    clock.run("score with live model", _score_and_record, engine, settings, live, policy, truth)
    before = clock.run("evaluate live model", _evaluate, live, policy, sets, "demo-v0")
    chosen = clock.run("route to annotators", _pick, engine, policy, a.n) if a.stream else None
    n_dec, corrected = clock.run("record analyst decisions", _decide, engine, policy, truth, chosen)

    from storage.blobs import BlobStore

    store = BlobStore(settings.blobs_path)
    with unit_of_work(engine) as s:
        ds = clock.run(
            "build dataset",
            build_dataset,
            s,
            work / "dataset",
            policy,
            read_image=store.read_bytes,
            options=BuildOptions(
                replay_ratio=a.replay_ratio,
                replay_manifest=replay_manifest,
                learn_reading=a.reading,
                seed=0,
            ),
        )
    post = recipe.post  # the demo recipe's `post` section; flags below override it
    if a.negatives is not None:
        post = replace(post, negatives_per_image=a.negatives)
    if a.replay_all_negatives is not None:
        post = replace(post, replay_all_negatives=a.replay_all_negatives)
    if a.lora_r is not None:
        post = replace(post, lora_r=a.lora_r, lora_alpha=2 * a.lora_r)
    if a.tune_content_tokens is not None:
        post = replace(post, tune_content_tokens=a.tune_content_tokens)
    if a.epochs is not None:
        post = replace(post, epochs=a.epochs)
    if a.max_steps is not None:
        post = replace(post, max_steps=a.max_steps)
    if a.lr is not None:
        post = replace(post, lr=a.lr)
    res = clock.run(
        "post-train (TRL SFT + LoRA)",
        post_train,
        str(model_dir),
        work / "dataset",
        work / "run",
        post,
        policy=policy,
    )
    with unit_of_work(engine) as s:
        register_run(s, res, name="demo-v1", actor="bench")
    cand = load_backend(
        live_settings.model_copy(update={"adapter": res.adapter}), version_name="demo-v1"
    )
    after = clock.run("evaluate candidate", _evaluate, cand, policy, sets, "demo-v1")
    # The gate compares what the team cares about: the original categories (the retention
    # rows) and the new variant, on one combined set; the scores are the ones just measured.
    g_before = _combined(before, policy, "demo-v0")
    g_after = _combined(after, policy, "demo-v1")
    with unit_of_work(engine) as s:
        key = g_before.eval_key
        registry.record_eval(s, "demo-v0", key, g_before.summary())
        registry.record_eval(s, "demo-v1", key, g_after.summary())
        gate = registry.promote(
            s,
            "demo-v1",
            "bench",
            tolerance=settings.train.promote_tolerance,
            retention_tolerance=settings.train.retention_tolerance,
        )
    total = round(time.perf_counter() - t_start, 1)
    engine.dispose()
    reader_only = _reader_only(ds, res, model_dir, work, policy, sets, clock)

    def avg(r: dict[str, Any], k: str) -> float:
        return r[k].average_recall or 0.0

    orig_before, orig_after = before["in_distribution"], after["in_distribution"]
    deltas = {
        c: round(
            (orig_after.per_category[c].recall or 0) - (orig_before.per_category[c].recall or 0), 4
        )
        for c in orig_before.per_category
        if orig_before.per_category[c].recall is not None
    }
    result = {
        "hardware": prov.summary,
        "load_average_at_end": os.getloadavg(),
        "corrections": n_dec,
        "stream": a.stream or None,
        "ingested": rep.summary if hasattr(rep, "summary") else None,
        "dataset": {
            "path": ds.path,
            "counts": ds.counts["items"],
            "sft": ds.counts["sft"],
            "replay": ds.counts["replay"],
            "reading": ds.card["reading"],
            "preference": ds.counts["preference"],
        },
        "post_train": {k: v for k, v in res.metrics.items() if k != "sft"}
        | {"sft": {k: v for k, v in res.metrics.get("sft", {}).items() if k != "losses"}},
        "new_variant_recall": {
            "before": avg(before, "leetspeak"),
            "after": avg(after, "leetspeak"),
        },
        "original_average_recall": {
            "before": avg(before, "in_distribution"),
            "after": avg(after, "in_distribution"),
        },
        "new_variant_recall_by_coverage": {
            "before": recall_by_families(before["leetspeak"], policy, corrected),
            "after": recall_by_families(after["leetspeak"], policy, corrected),
        },
        "unseen_families_average_recall": {
            "before": avg(before, "unseen_families"),
            "after": avg(after, "unseen_families"),
        },
        "per_category_recall_delta_original": deltas,
        "per_category_recall_leetspeak": {
            c: {
                "before": before["leetspeak"].per_category[c].recall,
                "after": after["leetspeak"].per_category[c].recall,
            }
            for c in before["leetspeak"].per_category
            if before["leetspeak"].per_category[c].recall is not None
        },
        "gate": {
            "promoted": gate.promoted,
            "reasons": gate.reasons,
            "checks": [c.__dict__ for c in gate.checks],
        },
        "ablation_reader_only": reader_only,
        "stages_s": clock.stages,
        "total_s": total,
    }
    result["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}
    provenance.write_results(results_path, result, prov, default=str)

    nv, oa = result["new_variant_recall"], result["original_average_recall"]
    un = result["unseen_families_average_recall"]
    print()
    swaps = (ds.card["reading"] or {}).get("substitutions") or []
    print(f"character swaps learnt from the corrections: {len(swaps)}")
    if swaps:
        print("  " + ", ".join(f"{x['intended']}->{x['observed']} {x['p']:.2f}" for x in swaps))
    print(f"{'metric':40} {'before':>8} {'after':>8} {'delta':>8}")
    for label, d in (
        ("leetspeak recall (new variant)", nv),
        ("average recall, original set", oa),
        ("average recall, unseen phrase families", un),
    ):
        print(f"{label:40} {d['before']:8.3f} {d['after']:8.3f} {d['after'] - d['before']:+8.3f}")
    for part, d in result["new_variant_recall_by_coverage"]["after"].items():
        b = result["new_variant_recall_by_coverage"]["before"][part]
        what = "corrected templates" if part == "in_families" else "other templates"
        label = f"  leetspeak, {what} (n={d['n']})"
        print(f"{label:40} {b['average_recall'] or 0:8.3f} {d['average_recall'] or 0:8.3f}")
    if reader_only:
        print(
            "ablation, live model + the candidate's reader, no adapter: leetspeak "
            f"{reader_only['leetspeak']:.3f}, original set {reader_only['in_distribution']:.3f}"
        )
    print("per-category recall delta on the original set:")
    for c, d in deltas.items():
        print(f"  {c:16} {d:+.3f}")
    print(f"gate: {gate.summary()}")
    print(f"total {total:.0f} s ({result['hardware']}); stages: {json.dumps(clock.stages)}")
    print(f"-> {results_path}")


if __name__ == "__main__":
    main()
