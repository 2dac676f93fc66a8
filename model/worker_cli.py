"""`warden score`: run a scoring worker against the configured database.

    warden score                         # the configured model (WARDEN_MODEL__NAME, default demo)
    warden score --model live            # the model promoted in the registry
    warden score --model ./runs/r7/model --limit 100 --batch-size 16
    warden score --model openai          # an OpenAI-compatible server (WARDEN_MODEL__OPENAI_*)
    warden score --no-backfill           # queued items only, no backfill of decided items

Several workers may run at once against one PostgreSQL; each claims its own batches.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer

from storage.cli import friendly_errors
from storage.errors import WardenError

if TYPE_CHECKING:
    from model.loading import RegistryTarget
    from storage.settings import ModelSettings, Settings

log = logging.getLogger(__name__)


def resolve_model(
    settings: Settings, model: str | None
) -> tuple[ModelSettings, RegistryTarget | None]:
    """`--model` as (ModelSettings for `load_backend`, registry entry or None).

    "live" is the model promoted in the registry (`model_versions`, status live); a registry
    name is that version. Either loads its URI and adapter with its registry name as the model
    version and its stored calibration. "demo", a hub id, a local directory and "openai" pass
    through to `model.loading.load_backend`, which knows them.
    """
    from model.loading import registry_target
    from model.worker import check_database
    from storage.db import make_engine

    name = model or settings.model.name
    engine = make_engine(settings.database_url, settings.db)
    try:
        check_database(engine)  # before any model loads: a wrong URL fails in a second
    finally:
        engine.dispose()
    target = registry_target(settings.database_url, name)
    if target is None:
        if name == "live":
            raise WardenError(
                "no model is live yet: promote one (warden models promote NAME) or pass --model"
            )
        return settings.model.model_copy(update={"name": name}), None
    update = {"name": target.uri, "adapter": target.adapter_uri}
    return settings.model.model_copy(update=update), target


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
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    backfill: bool = typer.Option(
        True,
        "--backfill/--no-backfill",
        help="Once the queue is empty, also score decided (e.g. imported) and other non-queued "
        "items that have no prediction for this model and policy; status, decision and "
        "priority are left as they are.",
    ),
) -> None:
    """Score queued items with the VLM and the cheap signals (OCR, NSFW); then, with
    --backfill (the default), items outside the queue that this model has not scored."""
    from model.loading import apply_calibration, load_backend
    from model.worker import run_worker
    from storage.policy import load_policy
    from storage.settings import get_settings

    settings = get_settings()
    policy = load_policy(settings.policy_path)
    model_settings, target = resolve_model(settings, model)
    backend = load_backend(
        model_settings, policy=policy, version_name=target.name if target else None
    )
    if target is not None:
        apply_calibration(backend, target.calibration)
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
    )
    typer.echo(
        f"scored {report.scored} item(s) ({report.backfilled} by backfill), "
        f"{report.failed} failed attempt(s), "
        f"{report.given_up} given up; model {report.model_version}, "
        f"policy {report.policy_version}"
    )
    typer.echo(
        f"throughput: {report.items_per_s:.2f} items/s "
        f"({report.scored} in {report.elapsed_s:.1f} s, {report.batches} batch(es))"
    )
    for item_id, error in sorted(report.errors.items()):
        typer.echo(f"  item {item_id}: {error}", err=True)


def register(cli: typer.Typer) -> None:
    cli.command("score")(score_command)
