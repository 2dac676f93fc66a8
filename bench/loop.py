"""One turn of Warden's loop, measured: serve -> correct -> `warden retrain` -> held-out sets.

The turn runs the same code as `warden retrain` (`training.retrain.run_retrain`: dataset from
the ledger, post-train with the live model's recipe picked from the registry, candidate and
live on the same golden + retention rows, gate) on any labelled data:
  1. ingest the corrections' images into a fresh SQLite ledger under --work and score them with
     the live model (the manifest's `rendered_text` / `ocr_text` stands in for OCR where given,
     RapidOCR reads the image where not);
  2. evaluate the live model on every held-out set;
  3. record one analyst decision per item (source=loop, the manifest's labels standing in for the
     analyst); with `--stream M`, M items are ingested and scored and Warden's annotation
     routing (`training.labelstudio.select`) picks the N that analysts see;
  4. `run_retrain` with `--replay` as the replay manifest (its held-out share is the gate's
     retention rows: the live model's original categories);
  5. evaluate the candidate on the same held-out sets; then, outside the turn's time, the live
     model with the candidate's reader and no adapter (how much each part gives).

With --corrections, the original categories are measured on --original (default with the
demo model: SynthMod's in-distribution set, rendered, another seed than the replay set) as well
as on the gate's retention rows. The gate's golden split also holds --benign-golden harmless
generated rows (held-out locales and seeds; half written in the learnt evasion), so its benign
flag rate line is measured on enough rows to bound (training.gate). Every held-out row's live
and candidate predictions go to WORK/predictions/SET.jsonl.

Without --corrections it renders SynthMod's leetspeak (the variant the demo never saw) as the
corrections, the demo's evaluation sets (leetspeak, in-distribution, unseen phrase families) as
the held-out sets and the demo's training distribution as the replay set, as it always has.

Manifests are the ingest format with labels (`{"path": ..., "labels": [...]}`, paths relative
to the manifest) plus optional `rendered_text`/`ocr_text`, `family`, `variant`; `--replay`
rows count as retention rows. Results, per held-out set: harmful caught (harmful rows with a
true category flagged) and benign flagged (harmless rows flagged), average recall, for live and
candidate; original-category retention and every gate line; seconds per stage; the load
average (bench/provenance.py). Written to bench/results/loop.json or --results.

Everything the turn writes stays under --work (default $TMPDIR/warden-loop), temporary files
and caches included (TMPDIR and the Hugging Face caches point there while it runs); only the
results file goes elsewhere.

Run: .venv/bin/python bench/loop.py [--n 300] [--stream 1200] [--no-reading] [--work DIR]
     [--keep] [--results PATH]
     .venv/bin/python bench/loop.py --corrections C.jsonl --heldout H1.jsonl [--heldout H2.jsonl]
     [--replay R.jsonl] [--original O.jsonl] [--benign-golden 240] [--model DIR]
     [--recipe NAME] [--work DIR] [--results PATH]
"""

from __future__ import annotations

import argparse
import hashlib
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
    """Times the bench's own stages, and is told of `run_retrain`'s (a `Reporter`)."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    def run(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.stages[name] = round(time.perf_counter() - t0, 1)
        print(f"[{self.stages[name]:7.1f} s] {name}", flush=True)
        return out

    def started(self, stage: str, what: str) -> None:
        print(f"[  start  ] {stage}: {what}", flush=True)

    def finished(self, run: Any) -> None:
        self.stages[run.name] = run.seconds
        print(f"[{run.seconds:7.1f} s] {run.name}: {run.detail}", flush=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _truth(manifest: Path, policy: Any) -> dict[str, Any]:
    """The corrections' rows (`training.evaluate.EvalRow`) by the sha256 of their image, which
    is the ingested item's blob_sha256."""
    from training.evaluate import read_manifest

    return {_sha(r.path): r for r in read_manifest(manifest, policy)}


def _score_and_record(engine: Any, settings: Any, backend: Any, policy: Any, truth: dict) -> int:
    """Score every ingested item with the live model and store the predictions; the OCR hint
    is the row's text where the manifest gives one, else RapidOCR's reading (as `warden eval`)."""
    from PIL import Image
    from sqlalchemy import select

    from model.backends import ScoringInput
    from storage.blobs import BlobStore
    from storage.db import unit_of_work
    from storage.models import Item
    from storage.queue import record_prediction
    from training.evaluate import _ocr_hint

    store = BlobStore(settings.blobs_path)
    with unit_of_work(engine) as s:
        items = [
            (i.id, i.blob_sha256, i.view_sha256 or i.blob_sha256, i.text)
            for i in s.scalars(select(Item).order_by(Item.id))
        ]
    inputs = []
    for item_id, sha, view, text in items:
        with Image.open(store.path(view)) as im:
            image = im.convert("RGB")
        hint, _source = _ocr_hint(truth[sha], image, "auto")
        inputs.append(ScoringInput(image=image, text=text or None, ocr_text=hint, item_id=item_id))
    verdicts = []
    for start in range(0, len(inputs), 64):
        verdicts += backend.score(inputs[start : start + 64], policy)
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


def _decide(engine: Any, policy: Any, truth: dict, only: set[int] | None = None) -> tuple[int, set]:
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
            row = truth[item.blob_sha256]
            record_decision(
                s,
                item_id=item.id,
                categories=list(row.labels),
                source="loop",
                reviewer="loop-analyst",
                policy=policy,
                external_ref=f"loop:{item.blob_sha256[:16]}",
            )
            n += 1
            if row.family:
                families.add(row.family)
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


def _write_predictions(folder: Path, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Every held-out row's labels, live and candidate predictions and scores, one JSON line
    each (folder/SET.jsonl), to see which rows flip."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rep in before.items():
        cand = {p["id"]: p for p in after[name].predictions}
        with (folder / f"{name.replace('/', '__')}.jsonl").open("w") as f:
            for p in rep.predictions:
                c = cand[p["id"]]
                row = {
                    "id": p["id"],
                    "path": p["path"],
                    "family": p["family"],
                    "text": p.get("ocr_text") or p.get("text"),
                    "labels": p["labels"],
                    "live": p["predicted"],
                    "candidate": c["predicted"],
                    "live_scores": p["scores"],
                    "candidate_scores": c["scores"],
                }
                f.write(json.dumps(row) + "\n")


def _golden_changes(policy: Any, turn: Any, live: Any, cand: Any, clock: Clock) -> dict[str, Any]:
    """The gate's own evaluation row by row (`turn.row_changes`, from the registry's rows): the
    golden rows, retention and the rest, the candidate lost or newly flagged against live. The
    listed rows are scored again by both models for their scores (the registry keeps
    predictions only); `rescored_agrees` says whether that scoring predicted what the gate saw."""
    from training.evaluate import evaluate_backend, read_dataset

    out = dict(turn.row_changes)
    listed = {
        r["id"] for part in out.values() for r in part["lost_rows"] + part["newly_flagged_rows"]
    }
    golden = {r.id: r for r in read_dataset(Path(turn.dataset), "golden", policy)[0]}
    rows = [golden[i] for i in sorted(listed) if i in golden]
    if not rows:
        return out
    again = clock.run(
        "score the changed golden rows again",
        lambda: {
            n: {p["id"]: p for p in evaluate_backend(b, policy, rows, model_name=n).predictions}
            for n, b in ((turn.live, live), (turn.candidate, cand))
        },
    )
    agrees = True
    for part in out.values():
        for r in part["lost_rows"] + part["newly_flagged_rows"]:
            lp, cp = again[turn.live].get(r["id"]), again[turn.candidate].get(r["id"])
            if lp is None or cp is None:
                continue
            cats = sorted(set(r["labels"]) | set(r["live"]) | set(r["candidate"]))
            r["live_scores"] = {c: lp["scores"][c] for c in cats}
            r["candidate_scores"] = {c: cp["scores"][c] for c in cats}
            agrees &= lp["predicted"] == r["live"] and cp["predicted"] == r["candidate"]
    out["rescored_agrees"] = agrees
    return out


def caught_and_flagged(report: Any) -> dict[str, Any]:
    """Harmful caught (harmful rows with at least one true category flagged), benign flagged
    (harmless rows with anything flagged) and average recall of one evaluation."""
    preds = report.predictions
    harmful = [p for p in preds if p["labels"]]
    benign = [p for p in preds if not p["labels"]]
    caught = sum(1 for p in harmful if set(p["labels"]) & set(p["predicted"]))
    flagged = sum(1 for p in benign if p["predicted"])
    return {
        "harmful_caught": round(caught / len(harmful), 4) if harmful else None,
        "benign_flagged": round(flagged / len(benign), 4) if benign else None,
        "average_recall": report.average_recall,
        "n_harmful": len(harmful),
        "n_benign": len(benign),
    }


def _reader_only(
    dataset: Path, adapter: Path, model_dir: Path, work: Path, policy: Any, sets: Any, clock: Clock
) -> dict[str, float] | None:
    """Ablation outside the turn's time: the live model with the candidate's reader and no
    adapter, which says how much of the gain is the reading and how much the post-training."""
    from model.loading import load_backend
    from model.reading import READING_FILE
    from storage.settings import ModelSettings
    from training.dataset import read_card

    if not read_card(dataset).get("reading") or not (adapter / READING_FILE).exists():
        return None
    folder = work / "live-with-reader"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for f in model_dir.iterdir():
        (folder / f.name).symlink_to(f.resolve())
    shutil.copy(adapter / READING_FILE, folder / READING_FILE)
    backend = load_backend(
        ModelSettings(name=str(folder), device="cpu", quant="none"), version_name="live+reader"
    )
    reports = clock.run("ablation: live + reader", _evaluate, backend, policy, sets, "reader")
    return {k: r.average_recall or 0.0 for k, r in reports.items()}


def _demo_replay(work: Path, n: int, clock: Clock) -> Path:
    """The demo's own training distribution (`n` SynthMod renders, retention rows). The
    dataset build holds a tenth out as the gate's retention rows and a tenth into validation:
    4,800 (the default) gives ~53 retention rows per original class, one row 1.9 points, under
    the gate's per-category tolerance of 3. At 2,400 (~27 rows) one row was 3.7 points, so a
    turn that lost any single row of a category was refused (600 gave 8 rows, 12.5 points a
    row). 4,800 was first tried before normalisation stopped changing plain words of its
    replay text (9245b0c); the split turn's reader was then refused."""
    from training.pretrain import demo_specs, write_eval_set
    from training.recipes import load_recipe

    specs = demo_specs(load_recipe("demo").demo, "train", n)
    return clock.run("render replay set", write_eval_set, specs, work / "replay", retention=True)


def _demo_original(work: Path, n: int, clock: Clock) -> Path:
    """SynthMod's in-distribution set (the demo's original categories and variants, another
    seed than the replay set): what "original categories" is measured on in a turn on outside
    data, beside the gate's retention rows."""
    from training.pretrain import demo_specs, write_eval_set
    from training.recipes import load_recipe

    specs = demo_specs(load_recipe("demo").demo, "in_distribution", n)
    return clock.run(
        "render original-category set", write_eval_set, specs, work / "original", retention=True
    )


def _default_sets(
    work: Path, n: int, replay_n: int, clock: Clock
) -> tuple[Path, dict[str, Path], Path]:
    """SynthMod's leetspeak turn, as this bench always ran it: (corrections, held-out sets,
    replay), rendered under `work` (the rendering is outside the turn's time)."""
    from training.pretrain import demo_eval_sets, demo_specs, write_eval_set
    from training.recipes import load_recipe

    plan = load_recipe("demo").demo
    sets = clock.run("render evaluation sets", demo_eval_sets, plan, work / "eval-sets")
    # The correction pool: leetspeak items from another seed than the leetspeak eval set.
    pool_specs = demo_specs(replace(plan, seed=plan.seed + 7), "leetspeak", n)
    pool = clock.run("render correction pool", write_eval_set, pool_specs, work / "pool")
    # The new variant first: it is what `new_variant_recall` reports.
    order = ["leetspeak", "in_distribution", "unseen_families"]
    return (
        pool,
        {k: sets[k] for k in order if k in sets} | sets,
        _demo_replay(work, replay_n, clock),
    )


def _keep_writes_inside(work: Path) -> None:
    """Temporary files and caches of this process and the libraries go under `work`."""
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = None  # re-read TMPDIR
    os.environ["HF_DATASETS_CACHE"] = str(work / "hf-datasets-cache")
    os.environ["HF_HOME"] = str(work / "hf-home")
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    os.environ["MPLCONFIGDIR"] = str(work / "cache" / "matplotlib")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="One measured turn of the Warden loop.")
    p.add_argument("--n", type=int, default=300, help="Analyst corrections (aim: 300)")
    p.add_argument(
        "--stream",
        type=int,
        default=0,
        help="Ingest and score this many items and let Warden's annotation routing pick the "
        "--n that analysts correct (default: correct every item, a random sample).",
    )
    p.add_argument(
        "--corrections",
        type=Path,
        default=None,
        help="Labelled manifest of the items analysts correct (default: SynthMod leetspeak); "
        "with --stream, the first --stream rows, else the first --n.",
    )
    p.add_argument(
        "--heldout",
        type=Path,
        action="append",
        default=None,
        help="Labelled manifest evaluated before and after the turn (repeatable; needed with "
        "--corrections; default: the demo's evaluation sets).",
    )
    p.add_argument(
        "--replay",
        type=Path,
        default=None,
        help="Replay manifest (default: the demo's training distribution, rendered); its "
        "held-out share is the gate's retention rows.",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "warden-loop",
        help="Scratch folder for everything the turn writes (wiped first unless --keep).",
    )
    p.add_argument(
        "--original",
        type=Path,
        default=None,
        help="Labelled manifest of the live model's original categories, evaluated before and "
        "after as the 'original categories' figures (default with the demo model and "
        "--corrections: SynthMod's in-distribution set, --original-n rows).",
    )
    p.add_argument(
        "--original-n",
        type=int,
        default=600,
        help="Rows of the original-category set (~60 per category: one row is under 2 points).",
    )
    p.add_argument(
        "--replay-n",
        type=int,
        default=4800,
        help="SynthMod renders in the replay set when --replay is not given (its tenth held "
        "out is the gate's retention rows, another tenth validation).",
    )
    p.add_argument(
        "--benign-golden",
        type=int,
        default=240,
        help="Harmless generated rows held out in golden (the gate's benign line; half in the "
        "learnt evasion).",
    )
    p.add_argument("--benign-validation", type=int, default=60)
    p.add_argument(
        "--retention-benign",
        type=int,
        default=400,
        help="At least this many of the replay set's harmless items among the gate's retention "
        "rows (the retention benign flag rate line's sample).",
    )
    p.add_argument(
        "--retention-per-category",
        type=int,
        default=100,
        help="At least this many retention rows carrying each category (the per-category lines' "
        "sample).",
    )
    p.add_argument(
        "--benign-share",
        type=float,
        default=0.3,
        help="Harmless generated negatives, this share of the train items (warden retrain's "
        "default).",
    )
    p.add_argument("--model", type=Path, default=None, help="Default: assets/model/demo.")
    p.add_argument(
        "--recipe",
        default=None,
        help="Recipe for the model (default: the one the registry picks: the demo's for it).",
    )
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument(
        "--hold-weight",
        type=float,
        default=None,
        help="Replay rows also learn the base model's answers (KL) times this (recipe's: 0).",
    )
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
        help="'No' rows kept per corrected image (default: the recipe's post section).",
    )
    p.add_argument(
        "--replay-all-negatives",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Keep every 'No' row of replay images (default: the recipe's post section).",
    )
    p.add_argument("--lora-r", type=int, default=None)
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="The turn's seed (dataset splits, negatives, training): runs of another seed are "
        "other samples of the same turn.",
    )
    p.add_argument(
        "--single-labels",
        choices=("partial", "complete"),
        default="partial",
        help="How the dataset build reads a correction with one label (warden dataset build "
        "--single-labels).",
    )
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
    for flag, value in (
        ("--retention-benign", a.retention_benign),
        ("--retention-per-category", a.retention_per_category),
    ):
        if value < 0:
            p.error(f"{flag} must be 0 or more (got {value})")
    if a.stream and a.stream <= a.n:
        p.error(f"--stream ({a.stream}) must exceed --n ({a.n}): routing picks --n out of it")
    if a.corrections is not None and not a.heldout:
        p.error("--corrections needs at least one --heldout set to measure the turn on")
    for flag, path in [
        ("--corrections", a.corrections),
        ("--replay", a.replay),
        ("--original", a.original),
    ] + [("--heldout", h) for h in a.heldout or []]:
        if path is not None and not path.is_file():
            p.error(f"{flag} {path}: no such manifest")
    work = a.work.resolve()
    if work.is_file():
        p.error(f"--work {work} is a file")
    if work.is_dir() and not a.keep and any(work.iterdir()) and not (work / WORK_MARK).exists():
        p.error(
            f"--work {work} is not empty and was not made by bench/loop.py; not wiping it "
            "(empty it yourself, or pass --keep to reuse it)"
        )
    results_path = provenance.results_or_exit(p, a.results, RESULTS_NAME)
    prov = provenance.start(__file__, argv)
    logging.basicConfig(level=logging.WARNING)
    if work.exists() and not a.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / WORK_MARK).touch()
    _keep_writes_inside(work)

    import torch

    from model.live import resolve_target
    from model.loading import DEMO_MODEL_DIR, load_target
    from storage.db import make_engine, unit_of_work
    from storage.ingest import ingest_paths
    from storage.migrate import upgrade
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY, ModelSettings, Settings
    from training import registry
    from training.evaluate import recall_by_families, row_changes
    from training.gate import GateSettings
    from training.recipes.pick import RECIPE_KEY, check_recipe
    from training.retrain import RetrainOptions, run_retrain

    torch.set_num_threads(min(4, os.cpu_count() or 1))
    model_dir = Path(a.model or DEMO_MODEL_DIR).resolve()
    policy = load_policy(DEFAULT_POLICY)
    clock = Clock()
    want = max(a.n, a.stream)
    if a.corrections is None:
        corrections, sets, replay = _default_sets(work, want, a.replay_n, clock)
    else:
        corrections = a.corrections
        sets = {}
        for h in a.heldout:
            name = h.stem if h.stem not in sets else f"{h.parent.name}/{h.stem}"
            sets[name] = h
        replay = a.replay or _demo_replay(work, a.replay_n, clock)
        original_set = a.original
        if original_set is None and a.model is None and a.original_n > 0:
            original_set = _demo_original(work, a.original_n, clock)
        if original_set is not None:
            sets["in_distribution"] = original_set
    if a.heldout and a.corrections is None:
        sets = {h.stem: h for h in a.heldout}
    truth = _truth(corrections, policy)
    files = list(dict.fromkeys(r.path for r in truth.values()))[:want]
    if len(files) < a.n:
        p.error(f"{corrections} has {len(files)} distinct images; --n asks for {a.n}")

    t_start = time.perf_counter()
    url = f"sqlite:///{work / 'warden.db'}"
    upgrade(url)
    settings = Settings(data_dir=work / "data", WARDEN_DATABASE_URL=url)
    engine = make_engine(url)
    rep = clock.run("ingest", ingest_paths, engine, settings, files, source="loop", policy=policy)
    manifest = {RECIPE_KEY: check_recipe(a.recipe)} if a.recipe else None
    with unit_of_work(engine) as s:
        registry.register_model(
            s, "live-v0", str(model_dir), actor="bench", live=True, manifest=manifest
        )
        live_target = resolve_target(s, "live-v0")
    base = ModelSettings(name=str(model_dir), device="cpu", quant="none")
    live = load_target(live_target, base=base)
    clock.run("score with live model", _score_and_record, engine, settings, live, policy, truth)
    before = clock.run("evaluate live model", _evaluate, live, policy, sets, "live-v0")
    chosen = clock.run("route to annotators", _pick, engine, policy, a.n) if a.stream else None
    n_dec, corrected = clock.run("record analyst decisions", _decide, engine, policy, truth, chosen)

    overrides: dict[str, Any] = {}
    for key, value in (
        ("negatives_per_image", a.negatives),
        ("replay_all_negatives", a.replay_all_negatives),
        ("tune_content_tokens", a.tune_content_tokens),
        ("epochs", a.epochs),
        ("max_steps", a.max_steps),
        ("lr", a.lr),
        ("hold_weight", a.hold_weight),
    ):
        if value is not None:
            overrides[key] = value
    if a.lora_r is not None:
        overrides |= {"lora_r": a.lora_r, "lora_alpha": 2 * a.lora_r}
    if a.seed:
        overrides["seed"] = a.seed  # and post-training's own draws and initialisation
    turn = run_retrain(
        engine,
        settings,
        policy,
        RetrainOptions(
            work=work / "turn",
            replay_manifest=replay,
            replay_ratio=a.replay_ratio,
            learn_reading=a.reading,
            benign_share=a.benign_share,
            benign_golden=a.benign_golden,
            benign_validation=a.benign_validation,
            retention_benign=a.retention_benign,
            retention_per_category=a.retention_per_category,
            single_labels_partial=a.single_labels == "partial",
            seed=a.seed,
            name="live-v1",
            recipe=a.recipe,
            post_overrides=overrides,
            gate=GateSettings(
                tolerance=settings.train.promote_tolerance,
                retention_tolerance=settings.train.retention_tolerance,
            ),
            actor="bench",
        ),
        reporter=clock,
    )
    with unit_of_work(engine) as s:
        cand_target = resolve_target(s, turn.candidate)
        retrain_state = json.loads((work / "turn" / "retrain-state.json").read_text())
    cand = load_target(cand_target, base=base)
    after = clock.run("evaluate candidate", _evaluate, cand, policy, sets, turn.candidate)
    _write_predictions(work / "predictions", before, after)
    total = round(time.perf_counter() - t_start, 1)  # the turn; what follows is measurement
    golden_changes = _golden_changes(policy, turn, live, cand, clock)
    engine.dispose()
    train_out = retrain_state["stages"]["post-train"]["outputs"]
    ds_out = retrain_state["stages"]["dataset"]["outputs"]
    reader_only = _reader_only(
        Path(turn.dataset), Path(train_out["adapter"]), model_dir, work, policy, sets, clock
    )
    run_manifest = json.loads((Path(turn.run) / "manifest.json").read_text())

    def avg(r: dict[str, Any], k: str) -> float:
        return r[k].average_recall or 0.0

    checks = {c["name"]: c for c in turn.checks}
    heldout = {
        k: {
            "manifest": str(v),
            "live": caught_and_flagged(before[k]),
            "candidate": caught_and_flagged(after[k]),
            "row_changes": row_changes(before[k].predictions, after[k].predictions),
        }
        for k, v in sets.items()
    }
    first = next(iter(sets))
    if "in_distribution" in sets:  # the demo's own sets: the original categories measured there
        orig_b, orig_a = before["in_distribution"], after["in_distribution"]
        original = {
            "before": avg(before, "in_distribution"),
            "after": avg(after, "in_distribution"),
        }
        deltas = {
            c: round((orig_a.per_category[c].recall or 0) - (orig_b.per_category[c].recall or 0), 4)
            for c in orig_b.per_category
            if orig_b.per_category[c].recall is not None
        }
    else:  # the gate's retention rows (the replay set's held-out share)
        ret = checks.get("retention") or {}
        original = {"before": ret.get("live"), "after": ret.get("candidate")}
        deltas = {
            name[len("retention[") : -1]: round(c["delta"], 4)
            for name, c in checks.items()
            if name.startswith("retention[") and c["delta"] is not None
        }
    sft = run_manifest["metrics"].get("sft", {})
    result = {
        "hardware": prov.summary,
        "load_average_at_end": os.getloadavg(),
        "data": "synthmod-leetspeak" if a.corrections is None else str(a.corrections),
        "corrections": n_dec,
        "stream": a.stream or None,
        "ingested": rep.summary if hasattr(rep, "summary") else None,
        "recipe": turn.recipe,
        "replay": str(replay),
        "original": str(sets["in_distribution"]) if "in_distribution" in sets else None,
        "dataset": ds_out
        | {"reading": json.loads((Path(turn.dataset) / "card.json").read_text()).get("reading")},
        "post_train": {k: v for k, v in run_manifest["metrics"].items() if k != "sft"}
        | {"sft": {k: v for k, v in sft.items() if k != "losses"}},
        "heldout": heldout,
        "new_variant": first,
        "new_variant_recall": {"before": avg(before, first), "after": avg(after, first)},
        "original_average_recall": original,
        "per_category_recall_delta_original": deltas,
        "new_variant_recall_by_coverage": {
            "before": recall_by_families(before[first], policy, corrected),
            "after": recall_by_families(after[first], policy, corrected),
        },
        "per_category_recall_new_variant": {
            c: {
                "before": before[first].per_category[c].recall,
                "after": after[first].per_category[c].recall,
            }
            for c in before[first].per_category
            if before[first].per_category[c].recall is not None
        },
        "gate": {
            "promoted": turn.promoted,
            "summary": turn.summary,
            "reasons": turn.reasons,
            "eval_key": turn.eval_key,
            "checks": turn.checks,
            "row_changes": golden_changes,
        },
        "ablation_reader_only": reader_only,
        "stages_s": clock.stages,
        "total_s": total,
    }
    if "unseen_families" in sets:
        result["unseen_families_average_recall"] = {
            "before": avg(before, "unseen_families"),
            "after": avg(after, "unseen_families"),
        }
    result["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}
    provenance.write_results(results_path, result, prov, default=str)

    print()
    swaps = (result["dataset"]["reading"] or {}).get("substitutions") or []
    print(f"character swaps learnt from the corrections: {len(swaps)}")
    if swaps:
        print("  " + ", ".join(f"{x['intended']}->{x['observed']} {x['p']:.2f}" for x in swaps))
    print(f"{'held-out set':28} {'harmful caught':>22} {'benign flagged':>22} {'avg recall':>16}")

    def pair(k: str, h: dict[str, Any]) -> str:
        b, c = h["live"][k], h["candidate"][k]
        return "n/a" if b is None or c is None else f"{b:.3f} -> {c:.3f}"

    for k, h in heldout.items():
        print(
            f"{k[:28]:28} {pair('harmful_caught', h):>22} {pair('benign_flagged', h):>22} "
            f"{pair('average_recall', h):>16}"
        )
    ob, oa = original["before"], original["after"]
    if ob is not None and oa is not None:
        print(f"original categories (average recall) {ob:.3f} -> {oa:.3f} ({oa - ob:+.3f})")
    for part, d in result["new_variant_recall_by_coverage"]["after"].items():
        b = result["new_variant_recall_by_coverage"]["before"][part]
        what = "corrected families" if part == "in_families" else "other families"
        print(
            f"  {first}, {what} (n={d['n']}): {b['average_recall'] or 0:.3f} -> "
            f"{d['average_recall'] or 0:.3f}"
        )
    if reader_only:
        print(
            "ablation, live model + the candidate's reader, no adapter: "
            + ", ".join(f"{k} {v:.3f}" for k, v in reader_only.items())
        )
    print("per-category recall delta on the original categories:")
    for c, d in deltas.items():
        print(f"  {c:16} {d:+.3f}")
    print("rows the turn changed (lost a true category / newly flagged harmless):")
    parts = [(k, h["row_changes"]) for k, h in heldout.items()]
    parts += [(f"gate's golden, {k}", v) for k, v in golden_changes.items() if isinstance(v, dict)]
    for k, ch in parts:
        print(
            f"  {k[:40]:40} harmful {ch['harmful_rows_losing_a_category']} lost / "
            f"{ch['harmful_rows_gaining_a_category']} gained of {ch['n_harmful']}; harmless "
            f"{ch['benign_newly_flagged']} newly flagged / {ch['benign_no_longer_flagged']} "
            f"no longer of {ch['n_benign']}"
        )
    for r in (golden_changes.get("retention") or {}).get("lost_rows", []):
        print(f"    retention row lost {', '.join(r['lost'])}: {r['text'][:70]!r}")
    print(f"gate: {turn.summary}")
    print(
        f"total {total:.0f} s ({result['hardware']}); load average at end "
        f"{result['load_average_at_end']}; stages: {json.dumps(clock.stages)}"
    )
    print(f"-> {results_path}")


if __name__ == "__main__":
    main()
