"""Training commands of the `warden` CLI: datasets, training stages, evaluation, the registry.

    warden dataset build --out datasets/d1 [--replay-ratio 0.3] [--since 2026-11-01] [--no-reading]
    warden dataset export --dataset datasets/d1 --split golden --out exports/d1-golden
    warden train demo --out assets/model/demo --seed 0
    warden train pre|mid --base DIR --manifest synth/manifest.jsonl --out DIR [--recipe demo]
    warden train post --base M --data datasets/d1 --out runs/r1 [--method sft+dpo] [--qlora]
    warden eval --model NAME|DIR --manifest eval/manifest.jsonl [--against live] [--json]
    warden eval --model NAME --dataset datasets/d1 [--split golden|validation] --against live
    warden models list | register NAME --uri DIR [--recipe R] | promote NAME [--dataset DIR]
    warden models rollback
    warden retrain [--work DIR] [--replay-manifest M] [--from-stage STAGE]

A thin Typer layer over training.dataset, .pretrain, .posttrain, .evaluate, .registry and
.retrain; user errors print `Error: ...` and exit 2.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from storage.cli import _json_out, _parse_since, friendly_errors, open_db
from storage.errors import WardenError
from training.recipes.pick import SHIPPED_DEMO_RECIPE

dataset_app = typer.Typer(
    help="Training datasets built from the decision ledger.", no_args_is_help=True
)
train_app = typer.Typer(
    help="Train models: pre, mid, post, and the demo checkpoint.", no_args_is_help=True
)
models_app = typer.Typer(
    help="The model registry: list, register, promote, roll back.", no_args_is_help=True
)

CLI_ACTOR = "cli"


def _policy(settings: Any) -> Any:
    from storage.policy import load_policy

    return load_policy(settings.policy_path)


def _verbose() -> None:
    logging.getLogger("training").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")


# --- dataset ---------------------------------------------------------------------------------


# `warden dataset build` and `warden retrain`: how a decision with one label is read.
SINGLE_LABELS_OPTION = typer.Option(
    "partial",
    "--single-labels",
    help="partial: when the decisions carry several labels far less often than the replay "
    "data, a decision with one label does not answer the categories the policy pairs with it "
    "(a drug sale ad labelled drugs says nothing of illegal_ads) unless the analyst removed "
    "the model's flag; complete: every decision answers every category.",
)


def _single_labels_partial(value: str) -> bool:
    if value not in ("partial", "complete"):
        raise typer.BadParameter(f"--single-labels is partial or complete, not {value!r}")
    return value == "partial"


@dataset_app.command("build")
@friendly_errors
def dataset_build(
    out: Path = typer.Option(..., "--out", help="New folder for the dataset."),
    replay_ratio: float | None = typer.Option(
        None, "--replay-ratio", help="Share of replay rows in train (default settings.train)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only decisions from this date are new data (ISO date)."
    ),
    replay_from: Path | None = typer.Option(
        None, "--replay-from", help="Earlier dataset to replay (default: the latest built)."
    ),
    replay_manifest: Path | None = typer.Option(
        None, "--replay-manifest", help="SynthMod/general JSONL manifest to replay."
    ),
    reading: bool = typer.Option(
        True,
        "--reading/--no-reading",
        help="Learn the character swaps the corrections show (leetspeak, look-alikes) and "
        "write a reader for them beside the dataset (the card lists the swaps).",
    ),
    single_labels: str = SINGLE_LABELS_OPTION,
    val_fraction: float = typer.Option(0.1, "--val-fraction"),
    golden_fraction: float = typer.Option(0.1, "--golden-fraction"),
    replay_val_fraction: float = typer.Option(
        0.1,
        "--replay-val-fraction",
        help="This share of the replay pool is held out into validation (never trained on), "
        "so checkpoint choice and threshold fitting see the original categories.",
    ),
    benign_share: float = typer.Option(
        0.1,
        "--benign-share",
        help="Harmless generated text (Faker, Mimesis, wordfreq) as negatives, this share of "
        "the train items; as many again written in the learnt evasion when a reader is learnt.",
    ),
    benign_golden: int = typer.Option(
        0,
        "--benign-golden",
        help="Harmless generated rows (locales and seeds training never draws) held out in "
        "golden; with a reader, half written in the learnt evasion (warden retrain: 240).",
    ),
    benign_validation: int = typer.Option(
        0, "--benign-validation", help="As --benign-golden, in validation (retrain: 60)."
    ),
    retention_benign: int = typer.Option(
        0,
        "--retention-benign",
        min=0,
        help="At least this many of the replay pool's harmless items among the retention rows "
        "(golden), past --golden-fraction's share, so the gate can bound a benign flag rate "
        "rise on them (retrain: 400).",
    ),
    retention_per_category: int = typer.Option(
        0,
        "--retention-per-category",
        min=0,
        help="At least this many retention rows carrying each category of the replay pool, so "
        "the gate's per-category recall lines count in points a row can't tip (retrain: 100).",
    ),
    grounding: str = typer.Option(
        "internvl",
        "--grounding-format",
        help="Box format of the grounding rows: internvl, qwen2_vl, qwen2_5_vl, or a base "
        "model (folder or hub id) whose architecture picks it.",
    ),
    layout: str = typer.Option(
        "question",
        "--layout",
        help="Prompt layout of every prompt: question, policy, or a base model folder whose "
        "declared layout (warden_prompt.json) picks it; post-training refuses a dataset in "
        "another layout than its base's.",
    ),
    seed: int | None = typer.Option(None, "--seed"),
    name: str | None = typer.Option(None, "--name", help="Registry name (default: folder)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Curate the ledger into train / validation / golden parquet splits + SFT/DPO rows
    (and grounding rows for decisions with boxes)."""
    from model import loading, prompts
    from storage.blobs import BlobStore
    from storage.db import unit_of_work
    from training.dataset import BuildOptions, build_dataset
    from training.grounding import FORMATS, format_for_base, resize_for_base

    # A base model folder: the layout it declares (none: "question"); else a layout's name.
    prompt_layout = (
        prompts.model_layout(loading.resolve_model_path(layout))
        if layout not in prompts.LAYOUTS and Path(layout).expanduser().is_dir()
        else prompts.check_layout(layout)
    )
    grounding_format = grounding if grounding in FORMATS else format_for_base(grounding)
    grounding_resize = (
        resize_for_base(grounding)
        if grounding not in FORMATS and grounding_format == "qwen2_5_vl"
        else None
    )
    partial = _single_labels_partial(single_labels)
    with open_db() as (settings, engine):
        options = BuildOptions(
            replay_ratio=settings.train.replay_ratio if replay_ratio is None else replay_ratio,
            single_labels_partial=partial,
            since=_parse_since(since),
            val_fraction=val_fraction,
            golden_fraction=golden_fraction,
            replay_val_fraction=replay_val_fraction,
            seed=settings.train.seed if seed is None else seed,
            replay_from=replay_from,
            replay_manifest=replay_manifest,
            learn_reading=reading,
            benign_share=benign_share,
            benign_golden=benign_golden,
            benign_validation=benign_validation,
            retention_benign=retention_benign,
            retention_per_category=retention_per_category,
            grounding_format=grounding_format,
            grounding_resize=grounding_resize,
            layout=prompt_layout,
            # A post's or a video's media in its rows: at most what ingest lets in.
            max_images=settings.limits.max_images_per_post,
            max_frames=settings.limits.video_sample_frames,
            name=name,
        )
        store = BlobStore(settings.blobs_path)
        with unit_of_work(engine) as s:
            info = build_dataset(
                s,
                out,
                _policy(settings),
                read_image=store.read_bytes,
                options=options,
                actor=CLI_ACTOR,
            )
    if as_json:
        _json_out(
            {
                "name": info.name,
                "path": info.path,
                "data_hash": info.data_hash,
                "counts": info.counts,
                "layout": info.card["layout"],
            }
        )
        return
    c = info.counts
    typer.echo(
        f"dataset {info.name} -> {info.path} (data hash {info.data_hash[:12]}, "
        f"{info.card['layout']} prompt layout)"
    )
    typer.echo(
        f"images: train {c['items']['train']} (replay {c['replay']}, hard {c['hard']}), "
        f"validation {c['items']['validation']}, golden {c['items']['golden']} "
        f"(retention {c.get('retention', 0)}: replay rows the gate checks for forgetting)"
    )
    typer.echo(
        f"SFT rows: {c['sft']['train']} train, {c['sft']['validation']} validation; "
        f"preference pairs: {c['preference']}"
    )
    g = c.get("grounding")
    if g is not None:
        typer.echo(
            f"grounding rows ({g['format']} boxes): {g['train']} train, {g['validation']} "
            f"validation, from {g['items']} items"
        )
    typer.echo(f"curation: {json.dumps(c['curation'])}")
    swaps = (info.card.get("reading") or {}).get("substitutions") or []
    if swaps:
        shown = ", ".join(f"{s['intended']}->{s['observed']} {s['p']:.2f}" for s in swaps[:12])
        typer.echo(f"character swaps in the corrections (read back by reading.json): {shown}")


@dataset_app.command("export")
@friendly_errors
def dataset_export(
    dataset: Path = typer.Option(..., "--dataset", help="A built dataset (warden dataset build)."),
    split: str = typer.Option("golden", "--split", help="train, validation or golden."),
    out: Path = typer.Option(..., "--out", help="Folder for images/ and manifest.jsonl."),
) -> None:
    """Write one split as image files + a JSONL manifest that `warden eval --manifest` and
    `warden ingest` read: a post as one row with all its images in order, a video as its
    frames with their timestamps (training.dataset.export_manifest)."""
    from training.dataset import SPLITS, export_manifest

    if split not in SPLITS:
        raise WardenError(f"--split {split!r}: use one of {', '.join(SPLITS)}")
    manifest = export_manifest(dataset, split, out)
    n = sum(1 for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip())
    typer.echo(f"{n} rows of {Path(dataset).name} ({split}) -> {manifest}")


# --- train -----------------------------------------------------------------------------------


def _stage(recipe: str | None, stage: str, **overrides: Any) -> Any:
    from dataclasses import replace

    from training.pretrain import StageConfig
    from training.recipes import load_recipe

    base = getattr(load_recipe(recipe), stage) if recipe else None
    config = base or StageConfig(stage=stage)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def _stage_command(stage: str) -> Any:
    @friendly_errors
    def command(
        base: Path = typer.Option(..., "--base", help="Model directory to start from."),
        manifest: list[Path] = typer.Option(..., "--manifest", help="Training manifest(s)."),
        out: Path = typer.Option(..., "--out", help="Folder for the trained model."),
        recipe: str | None = typer.Option(None, "--recipe", help="Recipe name or YAML file."),
        max_steps: int | None = typer.Option(None, "--max-steps"),
        epochs: float | None = typer.Option(None, "--epochs"),
        lr: float | None = typer.Option(None, "--lr"),
        batch_size: int | None = typer.Option(None, "--batch-size"),
        seed: int | None = typer.Option(None, "--seed"),
    ) -> None:
        from storage.settings import get_settings
        from training.pretrain import run_stage

        _verbose()
        config = _stage(
            recipe,
            stage,
            max_steps=max_steps,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
        )
        if config.max_steps is None and config.epochs is None and config.max_seconds is None:
            config = _stage(recipe, stage, epochs=1.0)
        res = run_stage(base, manifest, _policy(get_settings()), config, out)
        typer.echo(
            f"{stage}: {res.steps} steps, {res.samples} samples in {res.seconds:.0f} s; "
            f"loss {res.first_loss:.3f} -> {res.last_loss:.3f}; saved to {out}"
        )

    command.__doc__ = {
        "pre": "Pre-training: align the projector with the encoders frozen.",
        "mid": "Mid-training: domain data mixed with general data.",
    }[stage]
    return command


train_app.command("pre")(_stage_command("pre"))
train_app.command("mid")(_stage_command("mid"))


@train_app.command("demo")
@friendly_errors
def train_demo_command(
    out: Path = typer.Option(None, "--out", help="Default: assets/model/demo."),
    seed: int = typer.Option(0, "--seed"),
    recipe: str = typer.Option(
        SHIPPED_DEMO_RECIPE, "--recipe", help="Default: the recipe of the shipped demo."
    ),
    work: Path | None = typer.Option(
        None, "--work", help="Folder for the evaluation sets (default: a temp folder)."
    ),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the evaluation."),
) -> None:
    """Build the demo checkpoint: SynthMod -> pre -> mid -> the recipe's benign stage ->
    evaluation (CPU; the shipped recipe 42-46 min on 2 idle cores with bf16 instructions)."""
    from dataclasses import replace

    from model.loading import DEMO_MODEL_DIR
    from storage.settings import get_settings
    from training.pretrain import DemoPlan, train_demo
    from training.recipes import load_recipe
    from training.recipes.pick import check_recipe

    _verbose()
    plan = load_recipe(recipe).demo or DemoPlan()
    plan = replace(plan, seed=seed)
    card = train_demo(
        out or DEMO_MODEL_DIR,
        plan=plan,
        work=work,
        policy=_policy(get_settings()),
        evaluate=not no_eval,
        recipe=check_recipe(recipe),
    )
    typer.echo(
        f"demo model -> {out or DEMO_MODEL_DIR} ({card['parameters']} parameters, "
        f"{card['total_seconds']:.0f} s)"
    )
    for name, ev in (card.get("eval") or {}).items():
        typer.echo(f"  {name:16} average recall {ev['average_recall']:.3f}  (n={ev['n']})")


@train_app.command("post")
@friendly_errors
def train_post(
    base: str = typer.Option(..., "--base", help="Base model: directory, hub id or 'demo'."),
    data: Path = typer.Option(..., "--data", help="Dataset folder (warden dataset build)."),
    out: Path = typer.Option(..., "--out", help="Run folder (adapter, manifest, checkpoints)."),
    method: str | None = typer.Option(None, "--method", help="sft | dpo | sft+dpo"),
    qlora: bool = typer.Option(False, "--qlora", help="4-bit NF4 base (bitsandbytes)."),
    recipe: str | None = typer.Option(None, "--recipe", help="Recipe name or YAML file."),
    replay: Path | None = typer.Option(
        None, "--replay", help="Extra replay manifest mixed into the SFT rows."
    ),
    replay_ratio: float | None = typer.Option(None, "--replay-ratio"),
    max_steps: int | None = typer.Option(None, "--max-steps"),
    epochs: float | None = typer.Option(None, "--epochs"),
    lr: float | None = typer.Option(None, "--lr"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    tune_content_tokens: bool | None = typer.Option(
        None,
        "--tune-content-tokens/--no-tune-content-tokens",
        help="Also train the embeddings of the tokens the new data brings (default: recipe).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    register: str | None = typer.Option(
        None, "--register", help="Register the adapter as candidate NAME in the registry."
    ),
) -> None:
    """Post-train with TRL + PEFT (LoRA / QLoRA) on a dataset's SFT rows / preference pairs."""
    from dataclasses import replace

    from storage.settings import get_settings
    from training.posttrain import PostTrainConfig, post_train, register_run
    from training.recipes import load_recipe

    _verbose()
    if method is not None and method not in ("sft", "dpo", "sft+dpo"):
        raise WardenError(f"--method {method!r}: use sft, dpo or sft+dpo")
    name = recipe or _recipe_of_base(base)
    typer.echo(f"recipe: {name}" + ("" if recipe else " (picked for this base)"))
    config = load_recipe(name).post or PostTrainConfig()
    overrides = {
        "method": method,
        "max_steps": max_steps,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "replay_ratio": replay_ratio,
        "replay_manifest": str(replay) if replay else None,
        "tune_content_tokens": tune_content_tokens,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if qlora:
        config = replace(config, qlora=True)
    if config.replay_manifest and not config.replay_ratio:
        config = replace(config, replay_ratio=get_settings().train.replay_ratio)
    res = post_train(base, data, out, config, resume=resume, policy=_policy(get_settings()))
    typer.echo(f"adapter -> {res.adapter} ({res.metrics['seconds']:.0f} s)")
    for stage in ("sft", "dpo"):
        m = res.metrics.get(stage)
        if m and "first_loss" in m:
            typer.echo(f"  {stage}: loss {m['first_loss']:.4f} -> {m['last_loss']:.4f}")
    if register:
        from storage.db import unit_of_work

        with open_db() as (_settings, engine), unit_of_work(engine) as s:
            info = register_run(s, res, name=register, actor=CLI_ACTOR)
        typer.echo(f"registered candidate {info.name}")


def _recipe_of_base(base: str) -> str:
    """The recipe `base` was built with (training.recipes.pick): its folder's card, a built-in
    recipe naming it, or a registry entry of it that records one; never generic by accident."""
    from model.loading import resolve_model_path
    from training import registry
    from training.recipes.pick import no_recipe_error, recipe_for_base, recipe_for_entry

    found = recipe_for_base(base)
    if found:
        return found
    try:
        resolved = resolve_model_path(base)
    except WardenError:
        resolved = base
    try:
        from storage.db import unit_of_work

        with open_db() as (_settings, engine), unit_of_work(engine) as s:
            for entry in registry.list_models(s):
                if entry.name == base or entry.uri in (base, resolved):
                    found = recipe_for_entry(entry)
                    if found:
                        return found
    except WardenError:  # no database: only the folder and the built-in recipes can say
        pass
    raise no_recipe_error(f"base {base!r}")


# --- eval ------------------------------------------------------------------------------------


def _eval_rows(
    manifest: Path | None, dataset: Path | None, split: str, policy: Any, limit: int | None
) -> tuple[list[Any], str, Path]:
    """(rows, evaluation key, default report folder) of a manifest or a built dataset."""
    from training.evaluate import manifest_key, read_dataset, read_manifest

    if (manifest is None) == (dataset is None):
        raise WardenError("give one of --manifest FILE or --dataset DIR")
    if dataset is not None:
        rows, key = read_dataset(dataset, split, policy)
        folder = Path(dataset)
    else:
        assert manifest is not None
        rows, key, folder = read_manifest(manifest, policy), manifest_key(manifest), manifest.parent
    if limit:
        rows, key = rows[:limit], f"{key}:{limit}"
    return rows, key, folder


@friendly_errors
def eval_command(
    model: str = typer.Option(..., "--model", help="Registry name, 'live', 'demo' or a dir."),
    manifest: Path | None = typer.Option(None, "--manifest", help="JSONL manifest with labels."),
    dataset: Path | None = typer.Option(
        None, "--dataset", help="A built dataset (warden dataset build): evaluate one split."
    ),
    split: str = typer.Option("golden", "--split", help="Dataset split: golden | validation."),
    against: str | None = typer.Option(None, "--against", help="Compare with 'live' or a name."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    report: Path | None = typer.Option(None, "--report", help="HTML report path."),
    ocr: str = typer.Option(
        "auto",
        "--ocr",
        help="auto (the row's text where it has one, else RapidOCR) | manifest | rapidocr | none",
    ),
    rationale: bool = typer.Option(False, "--rationale", help="Also count unparsable replies."),
    record: bool = typer.Option(
        True, "--record/--no-record", help="Store the results in the registry (named models)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Evaluate the first N rows only."),
) -> None:
    """Per-category precision/recall/F1, average recall, adversarial recall, ECE, retention,
    benign flag rate; the OCR source of every row."""
    from storage.db import unit_of_work
    from storage.settings import get_settings
    from training.evaluate import format_table, write_report
    from training.judge import evaluate_models

    policy = _policy(get_settings())
    rows, key, folder = _eval_rows(manifest, dataset, split, policy, limit)
    is_path = model == "demo" or Path(model).exists()
    needs_db = against is not None or model == "live" or not is_path
    with ExitStack() as stack:
        session = None
        if needs_db:
            _settings, engine = stack.enter_context(open_db())
            session = stack.enter_context(unit_of_work(engine))
        specs = [model] + ([against] if against else [])
        reports = evaluate_models(
            specs, rows, key, session, policy, ocr=ocr, rationale=rationale, record=record
        )
    what = f"{Path(dataset).name} ({split})" if dataset is not None else Path(str(manifest)).name
    suffix = f"-{split}" if dataset is not None else ""
    out = report or folder / f"eval{suffix}-{reports[0].model.replace('/', '_')}.html"
    write_report(reports, out, title=f"Warden evaluation on {what}")
    if as_json:
        _json_out({"eval_key": key, "report": str(out), "results": [r.summary() for r in reports]})
        return
    typer.echo(format_table(reports[0], reports[1] if len(reports) > 1 else None))
    typer.echo(f"report: {out}")


# --- models ----------------------------------------------------------------------------------


@models_app.command("list")
@friendly_errors
def models_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every registered model version, live first."""
    from storage.db import unit_of_work
    from training import registry

    with open_db() as (_settings, engine), unit_of_work(engine) as s:
        models = registry.list_models(s)
    if as_json:
        _json_out([{**m.__dict__, "metrics": m.metrics} for m in models])
        return
    if not models:
        typer.echo("no models registered; `warden models register NAME --uri DIR`")
        return
    for m in sorted(models, key=lambda m: (m.status != "live", -m.id)):
        last = m.metrics.get("last_eval")
        avg = (m.metrics.get("evals") or {}).get(last, {}).get("average_recall") if last else None
        typer.echo(
            f"{m.status:11} {m.name:30} {m.uri}"
            + (f" + {m.adapter_uri}" if m.adapter_uri else "")
            + (f"  avg recall {avg:.3f} [{last}]" if avg is not None else "")
        )


@models_app.command("register")
@friendly_errors
def models_register(
    name: str = typer.Argument(...),
    uri: str = typer.Option(..., "--uri", help="Model directory or hub id."),
    adapter: str | None = typer.Option(None, "--adapter", help="LoRA adapter directory."),
    live: bool = typer.Option(False, "--live", help="Make it live (only if none is)."),
    recipe: str | None = typer.Option(
        None,
        "--recipe",
        help="Recipe that trains it (name or YAML file), recorded for `warden retrain` "
        "(default: the one its folder or a built-in recipe names).",
    ),
) -> None:
    """Register a model version as a candidate (or the first live model)."""
    from storage.db import unit_of_work
    from training import registry
    from training.recipes.pick import RECIPE_KEY, check_recipe

    manifest: dict[str, Any] = {}
    if adapter and (Path(adapter).parent / "manifest.json").exists():
        manifest = json.loads((Path(adapter).parent / "manifest.json").read_text())
    if recipe:
        manifest[RECIPE_KEY] = check_recipe(recipe)
    with open_db() as (_settings, engine), unit_of_work(engine) as s:
        info = registry.register_model(
            s,
            name,
            uri,
            actor=CLI_ACTOR,
            adapter_uri=adapter,
            base_model=manifest.get("base"),
            manifest=manifest,
            live=live,
        )
    typer.echo(f"registered {info.name} ({info.status})")


@models_app.command("promote")
@friendly_errors
def models_promote(
    name: str = typer.Argument(...),
    dataset: Path | None = typer.Option(
        None,
        "--dataset",
        help="Judge on this built dataset's golden split: evaluates candidate and live on it "
        "first (unless both already were).",
    ),
    ocr: str = typer.Option("auto", "--ocr", help="OCR hints for --dataset (see warden eval)."),
    benign_tolerance: float = typer.Option(
        0.02,
        "--benign-tolerance",
        help="How much the benign flag rate may rise (the 95% upper bound of the rise on the "
        "golden split's harmless rows).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Promote even if the gate refuses (an admin, with --reason)."
    ),
    admin: str | None = typer.Option(
        None, "--admin", help="With --force: the admin user who forces (audited)."
    ),
    reason: str | None = typer.Option(
        None, "--reason", help="With --force: why the gate is overridden (audited)."
    ),
) -> None:
    """Promote a candidate if it beats the live model on the same golden + retention rows
    without regressions (the gate: training.gate)."""
    from storage.db import unit_of_work
    from training import registry

    if force and (not admin or not (reason or "").strip()):
        raise WardenError("--force needs --admin USER (an admin) and --reason TEXT")
    with open_db() as (settings, engine), unit_of_work(engine) as s:
        key = None
        if dataset is not None:
            key = _golden_evaluations(s, name, dataset, ocr)
        res = registry.promote(
            s,
            name,
            admin if force and admin else CLI_ACTOR,
            force=force,
            reason=reason if force else None,
            eval_key=key,
            tolerance=settings.train.promote_tolerance,
            retention_tolerance=settings.train.retention_tolerance,
            benign_tolerance=benign_tolerance,
        )
    for c in res.checks:
        mark = "ok " if c.passed else "FAIL"
        bound = f"  lower bound {c.bound:+.3f}" if c.bound is not None else ""
        typer.echo(
            f"  {mark} {c.name:28} candidate {c.candidate:.3f}  live {c.live:.3f}  "
            f"delta {c.delta:+.3f}{bound}" + (f"  (n={c.n})" if c.n is not None else "")
        )
    typer.echo(res.summary())
    if not res.promoted:
        raise typer.Exit(1)


def _golden_evaluations(session: Any, name: str, dataset: Path, ocr: str) -> str:
    """Evaluate candidate `name` and the live model on `dataset`'s golden split (each only if
    it has no result there yet) and return the split's evaluation key."""
    from storage.settings import get_settings
    from training import registry
    from training.judge import golden_evaluations

    live = registry.live_model(session)
    names = [name] + ([live.name] if live is not None else [])
    key, reports = golden_evaluations(session, names, dataset, _policy(get_settings()), ocr=ocr)
    for rep in reports:
        typer.echo(f"evaluated {rep.model} on {key}: average recall {rep.average_recall}")
    return key


@models_app.command("rollback")
@friendly_errors
def models_rollback() -> None:
    """Put the previously live model back."""
    from storage.db import unit_of_work
    from training import registry

    with open_db() as (_settings, engine), unit_of_work(engine) as s:
        info = registry.rollback(s, CLI_ACTOR)
    typer.echo(f"live model is now {info.name}")


@models_app.command("calibrate")
@friendly_errors
def models_calibrate(
    name: str = typer.Argument(..., help="Registry name of the model version."),
    method: str = typer.Option("platt", "--method", help="platt or temperature."),
    model_version: str | None = typer.Option(
        None, "--model-version", help="Predictions' model_version (default: NAME)."
    ),
) -> None:
    """Fit per-category calibration on decided items; store it with the version; print ECE."""
    from storage.db import unit_of_work
    from storage.policy import load_policy
    from training.calibrate import calibrate_model

    with open_db() as (settings, engine), unit_of_work(engine) as s:
        res = calibrate_model(
            s,
            name,
            load_policy(settings.policy_path),
            actor=CLI_ACTOR,
            method=method,
            model_version=model_version,
        )
    typer.echo(
        f"{res.name}: {res.method} calibration on {res.items} decided items; "
        f"held-out ECE {res.ece_before:.4f} -> {res.ece_after:.4f}"
    )
    for cid, c in res.per_category.items():
        detail = f"a={c['a']:.3f} b={c['b']:.3f}" if c["method"] != "identity" else c["note"]
        typer.echo(f"  {cid:16} {c['method']:11} n={c['n']:<6} {detail}")


# --- retrain ---------------------------------------------------------------------------------


class _RichReporter:
    """Prints each stage as it starts and ends, with its time (training shows its own bar)."""

    def __init__(self, console: Any) -> None:
        self.console = console

    def started(self, stage: str, what: str) -> None:
        self.console.print(f"> {stage}: {what} ...", markup=False, highlight=False, soft_wrap=True)

    def finished(self, run: Any) -> None:
        when = (
            f"skipped, inputs unchanged (took {run.recorded_seconds:.1f} s)"
            if run.skipped
            else f"{run.seconds:.1f} s"
        )
        self.console.print(
            f"done {run.name} [{when}]: {run.detail}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@friendly_errors
def retrain_command(
    work: Path | None = typer.Option(
        None,
        "--work",
        help="Folder for the turn's dataset, run and state file (default: DATA_DIR/retrain); "
        "a rerun in the same folder skips the stages whose inputs did not change.",
    ),
    replay_manifest: Path | None = typer.Option(
        None,
        "--replay-manifest",
        help="General/earlier data to replay; its held-out share are the gate's retention rows "
        "(the latest dataset is replayed too).",
    ),
    replay_ratio: float | None = typer.Option(None, "--replay-ratio"),
    single_labels: str = SINGLE_LABELS_OPTION,
    reading: bool = typer.Option(
        True, "--reading/--no-reading", help="Learn a reader for the corrections' swaps."
    ),
    name: str | None = typer.Option(None, "--name", help="Candidate name (default: derived)."),
    recipe: str | None = typer.Option(
        None, "--recipe", help="Override the recipe the registry picks for the live model."
    ),
    from_stage: str | None = typer.Option(
        None,
        "--from-stage",
        help="Run this stage and every later one again: dataset | post-train | evaluate | gate.",
    ),
    ocr: str = typer.Option("auto", "--ocr", help="OCR hints for the evaluation (warden eval)."),
    benign_tolerance: float = typer.Option(
        0.02,
        "--benign-tolerance",
        help="How much the benign flag rate may rise (the 95% upper bound of the rise on the "
        "golden split's harmless rows).",
    ),
    benign_share: float = typer.Option(
        0.3,
        "--benign-share",
        help="Harmless generated negatives, this share of the train items (as many again in "
        "the learnt evasion when a reader is learnt); fewer let a turn flag harmless text that "
        "shares the corrected items' words.",
    ),
    benign_golden: int = typer.Option(
        240,
        "--benign-golden",
        help="Harmless generated rows held out in golden (half in the learnt evasion): enough "
        "for the gate to bound the benign flag rate rise near its tolerance.",
    ),
    benign_validation: int = typer.Option(
        60, "--benign-validation", help="As --benign-golden, in validation (checkpoint choice)."
    ),
    retention_benign: int = typer.Option(
        400,
        "--retention-benign",
        min=0,
        help="At least this many of the replay manifest's harmless items among the gate's "
        "retention rows: on fewer, one row newly flagged bounds the rise above the tolerance.",
    ),
    retention_per_category: int = typer.Option(
        100,
        "--retention-per-category",
        min=0,
        help="At least this many retention rows carrying each category of the replay manifest: "
        "on ~50, two rows lost are more than the per-category tolerance of 3 points.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One turn of the loop: dataset from the ledger -> post-train with the live model's recipe
    -> candidate and live on the same golden + retention rows -> gate -> promote or refuse."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from training.gate import GateSettings
    from training.retrain import RetrainOptions, run_retrain

    _verbose()
    console = Console(stderr=as_json)
    with open_db() as (settings, engine):
        options = RetrainOptions(
            work=work or settings.data_dir / "retrain",
            replay_manifest=replay_manifest,
            replay_ratio=settings.train.replay_ratio if replay_ratio is None else replay_ratio,
            learn_reading=reading,
            single_labels_partial=_single_labels_partial(single_labels),
            benign_share=benign_share,
            benign_golden=benign_golden,
            benign_validation=benign_validation,
            retention_benign=retention_benign,
            retention_per_category=retention_per_category,
            seed=settings.train.seed,
            name=name,
            recipe=recipe,
            ocr=ocr,
            gate=GateSettings(
                tolerance=settings.train.promote_tolerance,
                retention_tolerance=settings.train.retention_tolerance,
                benign_tolerance=benign_tolerance,
            ),
            from_stage=from_stage,
            actor=CLI_ACTOR,
        )
        # With --json, stdout carries the JSON alone: the trainer's log lines go to stderr.
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            res = run_retrain(engine, settings, _policy(settings), options, _RichReporter(console))
    if as_json:
        from dataclasses import asdict

        _json_out(asdict(res))
    else:
        table = Table(title=f"warden retrain: {res.candidate} vs {res.live} (recipe {res.recipe})")
        for col in ("stage", "ran", "seconds"):
            table.add_column(col, justify="right" if col == "seconds" else "left")
        for run in res.stages:
            secs = run.recorded_seconds if run.skipped else run.seconds
            table.add_row(run.name, "skipped" if run.skipped else "yes", f"{secs or 0:.1f}")
        console.print(table)
        gate_table = Table(title="gate (candidate vs live on the same rows)")
        for col in ("line", "ok", "candidate", "live", "delta", "limit", "n"):
            gate_table.add_column(col)
        for c in res.checks:
            bound = f" (bound {c['bound']:+.3f})" if c.get("bound") is not None else ""
            gate_table.add_row(
                escape(c["name"]),
                "ok" if c["passed"] else "FAIL",
                _num(c["candidate"]),
                _num(c["live"]),
                _num(c["delta"], signed=True) + bound,
                f"{c['limit']:.3f}",
                str(c.get("n") or ""),
            )
        console.print(gate_table)
        _print_row_changes(console, res.row_changes)
        typer.echo(res.summary)
    if not res.promoted:
        raise typer.Exit(1)


def _print_row_changes(console: Any, changes: dict[str, Any], show: int = 10) -> None:
    """The golden rows the candidate lost a true category on, or newly flagged, as the gate
    saw them (retention first): the rows behind a refusal for forgetting or false alarms. The
    text is the content's own, so it is escaped and cut, never rendered as markup."""
    from rich.markup import escape
    from rich.table import Table

    rows = [
        (part, "lost " + ", ".join(r["lost"]), r)
        for part in ("retention", "new")
        for r in (changes.get(part) or {}).get("lost_rows", [])
    ] + [
        (part, "newly flagged " + ", ".join(r["candidate"]), r)
        for part in ("retention", "new")
        for r in (changes.get(part) or {}).get("newly_flagged_rows", [])
    ]
    if not rows:
        return
    counts = ", ".join(
        f"{part}: {c['harmful_rows_losing_a_category']} of {c['n_harmful']} harmful rows lose "
        f"a category ({c['harmful_rows_gaining_a_category']} gain one), "
        f"{c['benign_newly_flagged']} of {c['n_benign']} harmless newly flagged"
        for part, c in changes.items()
        if isinstance(c, dict) and "n_harmful" in c
    )
    table = Table(title=f"golden rows the candidate changed ({counts})")
    for col in ("rows", "change", "labels", "text"):
        table.add_column(col)
    for part, change, r in rows[:show]:
        text = " ".join((r.get("text") or "").split())
        table.add_row(part, escape(change), escape(", ".join(r["labels"]) or "harmless"),
                      escape(text[:70]))  # fmt: skip
    if len(rows) > show:
        table.caption = f"{len(rows) - show} more in --json (row_changes)"
    console.print(table)


def _num(x: float | None, *, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def register(cli: typer.Typer) -> None:
    cli.add_typer(dataset_app, name="dataset")
    cli.add_typer(train_app, name="train")
    cli.add_typer(models_app, name="models")
    cli.command("eval")(eval_command)
    cli.command("retrain")(retrain_command)
