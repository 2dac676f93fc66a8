"""Training commands of the `warden` CLI: datasets, training stages, evaluation, the registry.

    warden dataset build --out datasets/d1 [--replay-ratio 0.3] [--since 2026-11-01] [--no-reading]
    warden train demo --out assets/model/demo --seed 0
    warden train pre|mid --base DIR --manifest synth/manifest.jsonl --out DIR [--recipe demo]
    warden train post --base M --data datasets/d1 --out runs/r1 [--method sft+dpo] [--qlora]
    warden eval --model NAME|DIR --manifest eval/manifest.jsonl [--against live] [--json]
    warden eval --model NAME --dataset datasets/d1 [--split golden|validation] --against live
    warden models list | register NAME --uri DIR | promote NAME [--dataset DIR] | rollback

A thin Typer layer over training.dataset, .pretrain, .posttrain, .evaluate and .registry;
user errors print `Error: ...` and exit 2.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from storage.cli import _json_out, _parse_since, friendly_errors, open_db
from storage.errors import WardenError

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
    val_fraction: float = typer.Option(0.1, "--val-fraction"),
    golden_fraction: float = typer.Option(0.1, "--golden-fraction"),
    seed: int | None = typer.Option(None, "--seed"),
    name: str | None = typer.Option(None, "--name", help="Registry name (default: folder)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Curate the ledger into train / validation / golden parquet splits + SFT/DPO rows."""
    from storage.blobs import BlobStore
    from storage.db import unit_of_work
    from training.dataset import BuildOptions, build_dataset

    with open_db() as (settings, engine):
        options = BuildOptions(
            replay_ratio=settings.train.replay_ratio if replay_ratio is None else replay_ratio,
            since=_parse_since(since),
            val_fraction=val_fraction,
            golden_fraction=golden_fraction,
            seed=settings.train.seed if seed is None else seed,
            replay_from=replay_from,
            replay_manifest=replay_manifest,
            learn_reading=reading,
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
            }
        )
        return
    c = info.counts
    typer.echo(f"dataset {info.name} -> {info.path} (data hash {info.data_hash[:12]})")
    typer.echo(
        f"images: train {c['items']['train']} (replay {c['replay']}, hard {c['hard']}), "
        f"validation {c['items']['validation']}, golden {c['items']['golden']} "
        f"(retention {c.get('retention', 0)}: replay rows the gate checks for forgetting)"
    )
    typer.echo(
        f"SFT rows: {c['sft']['train']} train, {c['sft']['validation']} validation; "
        f"preference pairs: {c['preference']}"
    )
    typer.echo(f"curation: {json.dumps(c['curation'])}")
    swaps = (info.card.get("reading") or {}).get("substitutions") or []
    if swaps:
        shown = ", ".join(f"{s['intended']}->{s['observed']} {s['p']:.2f}" for s in swaps[:12])
        typer.echo(f"character swaps in the corrections (read back by reading.json): {shown}")


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
    recipe: str = typer.Option("demo", "--recipe"),
    work: Path | None = typer.Option(
        None, "--work", help="Folder for the evaluation sets (default: a temp folder)."
    ),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the evaluation."),
) -> None:
    """Build the demo checkpoint: SynthMod -> pre -> mid -> evaluation (CPU, ~35 min idle)."""
    from dataclasses import replace

    from model.loading import DEMO_MODEL_DIR
    from storage.settings import get_settings
    from training.pretrain import DemoPlan, train_demo
    from training.recipes import load_recipe

    _verbose()
    plan = load_recipe(recipe).demo or DemoPlan()
    plan = replace(plan, seed=seed)
    card = train_demo(
        out or DEMO_MODEL_DIR,
        plan=plan,
        work=work,
        policy=_policy(get_settings()),
        evaluate=not no_eval,
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
    config = (load_recipe(recipe).post if recipe else None) or PostTrainConfig()
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


# --- eval ------------------------------------------------------------------------------------


def _load_model(spec: str, session: Any | None) -> tuple[Any, str, Any]:
    """(backend, display name, registry entry or None) for a name, 'live', 'demo' or a dir.
    A registry version (and 'live') loads through `model.live.resolve_target` and
    `model.loading.load_target`, as every serving process does: same version name, adapter
    and stored calibration."""
    from model.live import resolve_target
    from model.loading import load_backend, load_target
    from storage.settings import get_settings

    base = get_settings().model
    target = resolve_target(session, spec) if session is not None else None
    if spec == "live" and target is None:
        if session is None:
            raise WardenError("--model live needs a database with a live model")
        raise WardenError("no live model in the registry; `warden models promote` one")
    if target is not None:
        return load_target(target, base=base), target.name, target
    settings = base.model_copy(update={"name": spec, "adapter": None})
    return load_backend(settings), spec, None


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


def _evaluate_models(
    specs: list[str],
    rows: list[Any],
    key: str,
    session: Any | None,
    *,
    ocr: str,
    rationale: bool = False,
    record: bool = True,
) -> list[Any]:
    """Evaluate each model on the same rows; store registry versions' results under `key`."""
    from storage.settings import get_settings
    from training import registry
    from training.evaluate import OCR_MODES, evaluate_backend

    if ocr not in OCR_MODES:
        raise WardenError(f"--ocr {ocr!r}: use {', '.join(OCR_MODES)}")
    policy = _policy(get_settings())
    reports = []
    for spec in specs:
        backend, name, info = _load_model(spec, session)
        rep = evaluate_backend(
            backend,
            policy,
            rows,
            model_name=name,
            ocr=ocr,  # type: ignore[arg-type]
            rationale=rationale,
            eval_key=key,
        )
        reports.append(rep)
        if record and session is not None and info is not None:
            registry.record_eval(session, info.name, key, rep.summary())
    return reports


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
        reports = _evaluate_models(
            specs, rows, key, session, ocr=ocr, rationale=rationale, record=record
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
) -> None:
    """Register a model version as a candidate (or the first live model)."""
    from storage.db import unit_of_work
    from training import registry

    manifest: dict[str, Any] = {}
    if adapter and (Path(adapter).parent / "manifest.json").exists():
        manifest = json.loads((Path(adapter).parent / "manifest.json").read_text())
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
        0.02, "--benign-tolerance", help="How much the benign flag rate may rise."
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
    from training.evaluate import read_dataset

    rows, key = read_dataset(dataset, "golden", _policy(get_settings()))
    live = registry.live_model(session)
    specs = [name] + ([live.name] if live is not None and live.name != name else [])
    todo = []
    for spec in specs:
        evals = registry.get_model(session, spec).metrics.get("evals") or {}
        if not (evals.get(key) or {}).get("rows"):
            todo.append(spec)
    for rep in _evaluate_models(todo, rows, key, session, ocr=ocr):
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


def register(cli: typer.Typer) -> None:
    cli.add_typer(dataset_app, name="dataset")
    cli.add_typer(train_app, name="train")
    cli.add_typer(models_app, name="models")
    cli.command("eval")(eval_command)
