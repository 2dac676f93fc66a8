"""`warden labelstudio ...`: set up the project, push items, pull annotations, show status.

Run: warden labelstudio setup [--no-regions] [--overlap 2] [--webhook-url URL]
     warden labelstudio push --budget 200 [--strategy uncertainty ...] [--audit-pct 10]
     warden labelstudio pull
     warden labelstudio status [--json]
     warden labelstudio serve-webhook --port 8765 [--reconcile-s 300]
     warden labelstudio outbox list [--pending] [--json]
     warden labelstudio outbox retry [ID ...] [--all]
     warden labelstudio outbox deliver

Every push (and `outbox deliver`) first sends the batches still waiting from earlier pushes.

Connection comes from settings (WARDEN_LABELSTUDIO__URL, WARDEN_LABELSTUDIO__API_KEY). Errors
(server unreachable, key rejected, no project yet) print one line and exit 2. When Label
Studio is down, push and pull leave their work in the outbox and say so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import typer

from storage.cli import friendly_errors, open_db

app = typer.Typer(help="Label Studio: project set-up, push, pull, status.", no_args_is_help=True)


def _delivery_line(what: str, report: Any) -> str:
    if report is None:
        return f"{what}: nothing to send"
    line = f"{what}: {report.done} sent, {report.pending} waiting for retry"
    if report.last_error:
        line += f" (last error: {report.last_error})"
    return line


def _one_line(text: str | None, width: int = 100) -> str:
    """An outside error message on one printable line (it may carry a server's HTML)."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in (text or "")).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _age(then: datetime) -> str:
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    s = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


@app.command("setup")
@friendly_errors
def setup_command(
    regions: bool = typer.Option(
        True,
        "--regions/--no-regions",
        help="Rectangle regions per category over the image (evidence boxes go out as "
        "pre-annotations, corrected boxes come back).",
    ),
    overlap: int | None = typer.Option(None, "--overlap", min=1, help="Annotators per task."),
    webhook_url: str | None = typer.Option(
        None,
        "--webhook-url",
        help="Warden's receiver, e.g. http://127.0.0.1:7860/hooks/labelstudio",
    ),
) -> None:
    """Create or update the Label Studio project from the policy."""
    from training.labelstudio.project import setup

    with open_db() as (settings, _engine):
        state = setup(settings, regions=regions, overlap=overlap, webhook_url=webhook_url)
        typer.echo(
            f"project {state.project_id} on {state.url} (policy {state.policy_version}, "
            f"overlap {state.overlap}, regions {'on' if state.regions else 'off'}"
            + (f", webhook {state.webhook_url}" if state.webhook_url else "")
            + f", {'every image and frame' if state.all_media else 'cover image only'})"
        )
        if not state.all_media:
            typer.echo(
                "this project holds tasks made for one image per item, so it keeps showing the "
                "cover only (images 2+ and video frames, and boxes on them, stay in Warden); "
                "set up a new project to show them all"
            )


@app.command("push")
@friendly_errors
def push_command(
    budget: int = typer.Option(100, "--budget", min=1, help="At most this many items."),
    strategy: list[str] = typer.Option(
        None, "--strategy", help="disagreement, uncertainty, diversity, audit (default: all)."
    ),
    audit_pct: float = typer.Option(10.0, "--audit-pct", min=0.0, max=100.0),
    batch_size: int = typer.Option(100, "--batch-size", min=1),
    rereview: bool = typer.Option(False, "--rereview", help="Allow items pushed before."),
    data_uris: bool = typer.Option(False, "--data-uris", help="Embed images instead of URLs."),
    seed: int | None = typer.Option(None, "--seed"),
) -> None:
    """Select items by strategy and send them as tasks with pre-annotations."""
    from training.labelstudio.select import STRATEGIES
    from training.labelstudio.sync import push

    with open_db() as (settings, engine):
        report = push(
            settings,
            engine,
            budget=budget,
            strategies=tuple(strategy) if strategy else STRATEGIES,
            audit_pct=audit_pct,
            batch_size=batch_size,
            rereview=rereview,
            image_mode="data" if data_uris else "url",
            seed=seed,
        )
        by = ", ".join(f"{k} {v}" for k, v in sorted(report.by_strategy.items())) or "none"
        typer.echo(f"selected {report.selected} items ({by}) in {report.batches} batches")
        typer.echo(_delivery_line("batches", report.delivered))


@app.command("pull")
@friendly_errors
def pull_command() -> None:
    """Reconcile: convert every annotation in the project into decisions (idempotent)."""
    from training.labelstudio.sync import pull

    with open_db() as (settings, engine):
        report = pull(settings, engine)
        for r in report.results:
            typer.echo(
                f"annotations seen {r.get('seen', 0)}, new decisions {r.get('recorded', 0)}, "
                f"retracted {r.get('retracted', 0)}"
                + (
                    f", boxes {r['regions']} (malformed dropped {r['regions_dropped']})"
                    if "regions" in r
                    else ""
                )
            )
        if report.failed:
            typer.echo(_delivery_line("pull", report))


@app.command("status")
@friendly_errors
def status_command(as_json: bool = typer.Option(False, "--json")) -> None:
    """Connection, project, tasks, decisions, outbox backlog, agreement per category."""
    from training.labelstudio.status import labelstudio_status

    with open_db() as (settings, engine):
        st = labelstudio_status(settings, engine)
        if as_json:
            typer.echo(json.dumps(st, indent=2, default=str))
            return
        reach = "reachable" if st["reachable"] else f"UNREACHABLE: {st['error']}"
        typer.echo(f"Label Studio {st['url']}: {reach}")
        typer.echo(f"project: {st['project_id'] or 'not set up'}")
        typer.echo(f"tasks pushed: {st['tasks_pushed']}, waiting: {st['tasks_waiting']}")
        typer.echo(f"decisions pulled: {st['decisions_pulled']}")
        for topic, counts in st["backlog"].items():
            typer.echo(
                f"outbox {topic}: {counts['pending']} pending, {counts['dead']} dead, "
                f"{counts['done']} done"
                + (" (see `warden labelstudio outbox list`)" if counts["dead"] else "")
            )
        if st["agreement"]:
            typer.echo(
                "agreement (kappa): "
                + ", ".join(f"{k} {v:.2f}" for k, v in sorted(st["agreement"].items()))
            )


@app.command("serve-webhook")
@friendly_errors
def serve_webhook_command(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8765, "--port"),
    reconcile_s: float = typer.Option(300.0, "--reconcile-s", help="Reconcile period."),
) -> None:
    """Run the webhook receiver at /hooks/labelstudio and the outbox/reconcile loop."""
    from training.labelstudio.webhook import serve_webhook

    with open_db() as (settings, engine):
        serve_webhook(settings, engine, host=host, port=port, reconcile_s=reconcile_s)


outbox_app = typer.Typer(
    help="Label Studio messages that wait or gave up: list them, requeue them, send them.",
    no_args_is_help=True,
)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
@friendly_errors
def outbox_list_command(
    pending: bool = typer.Option(
        False, "--pending", help="List messages waiting for their next attempt instead."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Dead-lettered messages (gave up after their attempts): id, kind, attempts, error, age."""
    from storage import outbox
    from storage.db import unit_of_work
    from training.labelstudio.sync import TOPICS

    with open_db() as (_settings, engine):
        with unit_of_work(engine) as s:
            rows = outbox.list_messages(
                s, status="pending" if pending else "dead", topics=TOPICS, limit=10_000
            )
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2, default=str))
        return
    if not rows:
        typer.echo("no pending messages" if pending else "no dead messages")
        return
    typer.echo(f"{'id':>6}  {'kind':<9}  {'attempts':>8}  {'age':>7}  last error")
    for r in rows:
        typer.echo(
            f"{r.id:>6}  {r.topic:<9}  {r.attempts:>8}  {_age(r.created_at):>7}  "
            f"{_one_line(r.last_error) or '-'}"
        )


@outbox_app.command("retry")
@friendly_errors
def outbox_retry_command(
    ids: list[int] = typer.Argument(None, help="Dead message ids (see `outbox list`)."),
    all_: bool = typer.Option(False, "--all", help="Requeue every dead message."),
) -> None:
    """Requeue dead messages once their cause is fixed; the next delivery sends them."""
    from storage import outbox
    from storage.db import unit_of_work
    from storage.errors import WardenError
    from training.labelstudio.sync import TOPICS

    if bool(ids) == all_:
        raise WardenError("name the dead messages to requeue (ids from `outbox list`) or --all")
    with open_db() as (_settings, engine):
        with unit_of_work(engine) as s:
            if ids:
                dead = {r.id for r in outbox.list_messages(s, topics=TOPICS, ids=ids)}
                missing = [i for i in ids if i not in dead]
                if missing:
                    raise WardenError(
                        "not dead Label Studio messages: "
                        + ", ".join(map(str, missing))
                        + " (see `warden labelstudio outbox list`)"
                    )
            n = sum(outbox.retry_dead(s, topic, ids=ids or None) for topic in TOPICS)
    typer.echo(f"requeued {n} message{'s' if n != 1 else ''}; the next delivery sends them")


@outbox_app.command("deliver")
@friendly_errors
def outbox_deliver_command() -> None:
    """Send every due push, pull and event message now."""
    from training.labelstudio.sync import deliver

    with open_db() as (settings, engine):
        typer.echo(_delivery_line("messages", deliver(settings, engine)))


def register(cli: typer.Typer, _add: Callable[..., Any] | None = None) -> None:
    cli.add_typer(app, name="labelstudio")
