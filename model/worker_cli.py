"""`warden score`: run a scoring worker against the configured database.

    warden score                         # the live model (the registry's; the configured
                                         # WARDEN_MODEL__NAME only while none is live)
    warden score --model live            # the live model; refuses while none is live
    warden score --follow                # keep running: wait for new items, follow promotions
    warden score --model r7              # a registry version, pinned (or a hub id, a local
    warden score --model ./runs/r7/model --limit 100 --batch-size 16   # directory, "demo")
    warden score --model openai          # an OpenAI-compatible server (WARDEN_MODEL__OPENAI_*)
    warden score --no-backfill           # queued items only, no backfill of decided items
    warden score --no-pipeline           # signals then VLM, one batch after the other
    warden score --signal-procs 8        # 8 OCR/NSFW processes feed the VLM (model.pipeline)
    warden score --describe              # also describe each image/frame (model.describe)

Several workers may run at once against one PostgreSQL; each claims its own batches. A worker
on the live model asks the registry which version is live before every batch (at most every
--live-check-s seconds) and swaps to a newly promoted or rolled-back version without a
restart; if the registry cannot be read it stops with an error rather than score with another
model.

By default the worker is a pipeline (model.pipeline): a pool of processes decodes the images
and runs OCR and NSFW for the next batches while the VLM scores this one; at most
WARDEN_WORKER__MAX_IN_FLIGHT batches are claimed and not yet recorded. SIGTERM stops claiming
and scores the batches in flight before it exits; Ctrl-C hands them back unscored.
"""

from __future__ import annotations

import logging
import signal
import threading
from functools import partial
from typing import TYPE_CHECKING

import typer

from storage.cli import friendly_errors

if TYPE_CHECKING:
    from model.backends import Backend
    from model.worker import LiveSource
    from storage.settings import Settings

log = logging.getLogger(__name__)


def resolve_model(
    settings: Settings, model: str | None, *, live_check_s: float
) -> tuple[Backend | None, LiveSource | None]:
    """`--model` as (a pinned backend, None) or (None, a live source).

    No `--model`, or "live": the registry's live model, re-checked between batches (no
    `--model` serves the configured model while the registry has none live; "live" refuses).
    A registry name is that version, pinned, with its registry name as the model version and
    its stored calibration. "demo", a hub id, a local directory and "openai" pass through to
    `model.loading.load_backend`, which knows them.
    """
    from model.live import read_target
    from model.loading import live_backend, load_backend, load_target
    from model.worker import check_database
    from storage.db import make_engine

    engine = make_engine(settings.database_url, settings.db)
    try:
        check_database(engine)  # before any model loads: a wrong URL fails in a second
    finally:
        engine.dispose()
    if model is None or model == "live":
        source = partial(
            live_backend,
            settings.model,
            database_url=settings.database_url,
            check_s=live_check_s,
            require_registry=model == "live",
        )
        source()  # load now: a missing live model or a bad path fails before any claim
        return None, source
    target = read_target(settings.database_url, model)
    if target is None:
        return load_backend(settings.model.model_copy(update={"name": model})), None
    return load_target(target, base=settings.model), None


@friendly_errors
def score_command(
    model: str | None = typer.Option(
        None, "--model", help='Hub id, local directory, "demo", "live" or "openai".'
    ),
    limit: int | None = typer.Option(None, "--limit", min=0, help="Stop after N items."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Items claimed and scored together."
    ),
    worker_id: str | None = typer.Option(
        None, "--worker-id", help="Lease holder name (default host:pid:random)."
    ),
    rationale: bool = typer.Option(
        False, "--rationale/--no-rationale", help="Also generate a JSON rationale per item."
    ),
    describe: bool | None = typer.Option(
        None,
        "--describe/--no-describe",
        help="Have the model describe every image or frame for the review card (default: "
        "WARDEN_MODEL__DESCRIBE, off; a model that cannot see images never does).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    backfill: bool = typer.Option(
        True,
        "--backfill/--no-backfill",
        help="Once the queue is empty, also score decided (e.g. imported) and other non-queued "
        "items that have no prediction for this model and policy; status, decision and "
        "priority are left as they are.",
    ),
    follow: bool = typer.Option(
        False,
        "--follow/--no-follow",
        help="Keep running when no item is left: wait for new ones (Ctrl-C or SIGTERM ends).",
    ),
    poll_s: float = typer.Option(
        2.0, "--poll-s", min=0.05, help="With --follow: seconds between looks at an empty queue."
    ),
    pipeline: bool | None = typer.Option(
        None,
        "--pipeline/--no-pipeline",
        help="Compute OCR/NSFW in a process pool while the VLM scores (default: "
        "WARDEN_WORKER__PIPELINE, on); --no-pipeline runs them one after the other.",
    ),
    signal_procs: int | None = typer.Option(
        None,
        "--signal-procs",
        min=1,
        help="With --pipeline: signal processes (default WARDEN_WORKER__SIGNAL_PROCS, or one "
        "per core but one).",
    ),
    live_check_s: float = typer.Option(
        2.0,
        "--live-check-s",
        min=0.0,
        help="On the live model: ask the registry which version is live at most this often.",
    ),
) -> None:
    """Score queued items with the VLM and the cheap signals (OCR, NSFW); then, with
    --backfill (the default), items outside the queue that this model has not scored."""
    from model.worker import run_worker
    from storage.policy import load_policy
    from storage.settings import get_settings

    settings = get_settings()
    if describe is not None:
        settings = settings.model_copy(
            update={"model": settings.model.model_copy(update={"describe": describe})}
        )
    policy = load_policy(settings.policy_path)
    pool = None
    if settings.worker.pipeline if pipeline is None else pipeline:
        from model.pipeline import SignalPool, default_signal_procs

        # Started first: its processes load OCR/NSFW while this one loads the model.
        pool = SignalPool(
            settings.blobs_path,
            procs=signal_procs or settings.worker.signal_procs or default_signal_procs(),
            ocr=settings.model.ocr,
            nsfw=settings.model.nsfw,
            ocr_device=settings.worker.ocr_device,
            ocr_engine=settings.model.ocr_engine,
        )
        pool.start(wait=False)
    try:
        backend, live = resolve_model(settings, model, live_check_s=live_check_s)
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (a service manager stopping it) ends the run after the batches in flight.
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        report = run_worker(
            settings,
            backend,
            limit=limit,
            batch_size=batch_size or settings.model.batch_size,
            worker_id=worker_id,
            progress=progress,
            rationale=rationale,
            policy=policy,
            backfill=backfill,
            live=live,
            follow=follow,
            poll_s=poll_s,
            stop=stop,
            pipeline=pipeline,
            signal_procs=signal_procs,
            signal_pool=pool,
        )
    finally:
        if pool is not None:
            pool.close()
    typer.echo(
        f"scored {report.scored} item(s) ({report.backfilled} by backfill), "
        f"{report.failed} failed attempt(s), "
        f"{report.given_up} given up; model {' -> '.join(report.model_versions)}, "
        f"policy {report.policy_version}"
    )
    typer.echo(
        f"throughput: {report.items_per_s:.2f} items/s "
        f"({report.scored} in {report.elapsed_s:.1f} s, {report.batches} batch(es))"
        + (
            f"; descriptions of {report.described} image(s)/frame(s) in "
            f"{report.describe_s:.1f} s ({report.describe_s / report.described:.2f} s each)"
            if report.described
            else ""
        )
    )
    for item_id, error in sorted(report.errors.items()):
        typer.echo(f"  item {item_id}: {error}", err=True)


def register(cli: typer.Typer) -> None:
    cli.command("score")(score_command)
