"""Storage commands of the `warden` CLI: init, db, users, items, export, stats, audit, policy.

A thin Typer layer over the storage functions. User errors (WardenError, PolicyError, an
uninitialised or unreachable database) print `Error: ...` on stderr and exit 2, never a
traceback. Human output is rich tables; `--json` gives machine output on stdout. Untrusted text
(file names, notes) goes into tables as plain `Text`, never parsed as rich markup.

Run: warden init --admin-user admin ; warden users add alice --role moderator ;
     warden items list --status scored ; warden export decisions --format csv --out d.csv
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from storage.errors import WardenError
from storage.policy import PolicyError

F = TypeVar("F", bound=Callable[..., Any])

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
users_app = typer.Typer(help="Users and roles.", no_args_is_help=True)
items_app = typer.Typer(help="Browse items in the queue and the ledger.", no_args_is_help=True)
export_app = typer.Typer(help="Export data.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
policy_app = typer.Typer(help="The moderation policy.", no_args_is_help=True)

CLI_ACTOR = "cli"


def _console() -> Console:
    # Piped output gets a wide console so long values (notes, hashes) stay on one line.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, soft_wrap=False, width=width)


def friendly_errors(fn: F) -> F:
    """Turn user errors into `Error: ...` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return fn(*args, **kwargs)
        except (WardenError, PolicyError) as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(2) from None
        except ValidationError as exc:
            typer.echo(f"Error: invalid configuration: {exc}", err=True)
            raise typer.Exit(2) from None
        except (OperationalError, ProgrammingError) as exc:
            typer.echo(f"Error: database error: {getattr(exc, 'orig', exc)}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def open_db(*, require_schema: bool = True) -> Iterator[tuple[Any, Any]]:
    """(settings, engine) for a command; WardenError if the database is missing or old."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from storage.db import make_engine
    from storage.settings import get_settings

    settings = get_settings()
    url = settings.database_url
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        if not Path(u.database).exists():
            raise WardenError(f"no database at {u.database}; run `warden init` first")
    engine = make_engine(url, settings.db)
    try:
        if require_schema:
            from alembic.runtime.migration import MigrationContext

            try:
                with engine.connect() as conn:
                    rev = MigrationContext.configure(conn).get_current_revision()
            except OperationalError as exc:
                raise WardenError(
                    f"cannot connect to the database {_safe_url(url)}: {exc.orig}"
                ) from None
            if rev is None:
                raise WardenError(
                    f"the database {_safe_url(url)} is not initialised; run `warden init`"
                )
        yield settings, engine
    finally:
        engine.dispose()


def _fmt_time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _json_out(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _parse_since(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        value = datetime.fromisoformat(since)
    except ValueError:
        raise WardenError(
            f"--since {since!r} is not a date; use e.g. 2026-01-31 or 2026-01-31T12:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- init and db


@friendly_errors
def init_command(
    admin_user: str | None = typer.Option(
        None, "--admin-user", help="Create this admin user if it does not exist."
    ),
    admin_password: str | None = typer.Option(
        None,
        "--admin-password",
        envvar="WARDEN_ADMIN_PASSWORD",
        help="The admin's password (or env WARDEN_ADMIN_PASSWORD; prompted if omitted).",
        show_default=False,
    ),
) -> None:
    """Create the data directory, migrate the database, and optionally the first admin.

    Safe to run again: existing data and users are left as they are.
    """
    from storage.db import make_engine, unit_of_work
    from storage.migrate import current_revision, upgrade
    from storage.policy import load_policy
    from storage.settings import get_settings
    from storage.users import create_user, get_user

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.blobs_path.mkdir(parents=True, exist_ok=True)
    policy = load_policy(settings.policy_path)
    url = settings.database_url
    try:
        upgrade(url)
    except Exception as exc:  # connection refused, permissions: say where, not a traceback
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError | OSError):
            raise WardenError(f"cannot migrate {_safe_url(url)}: {exc}") from None
        raise
    out = _console()
    out.print(f"data dir   {settings.data_dir}", markup=False)
    out.print(f"database   {_safe_url(url)} (revision {current_revision(url)})", markup=False)
    out.print(
        f"policy     {policy.name} {policy.version} ({len(policy.ids)} categories)", markup=False
    )
    if admin_user:
        engine = make_engine(url, settings.db)
        try:
            with unit_of_work(engine) as s:
                try:
                    existing = get_user(s, admin_user)
                except WardenError:
                    existing = None
                if existing is not None:
                    out.print(
                        f"admin      {existing.username} already exists; unchanged", markup=False
                    )
                else:
                    password = admin_password or typer.prompt(
                        f"Password for {admin_user}", hide_input=True, confirmation_prompt=True
                    )
                    user = create_user(s, admin_user, password, "admin", actor=f"{CLI_ACTOR}:init")
                    out.print(f"admin      {user.username} created", markup=False)
        finally:
            engine.dispose()


@db_app.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Apply pending migrations."""
    from storage.migrate import current_revision, upgrade
    from storage.settings import get_settings

    settings = get_settings()
    with open_db(require_schema=False):
        pass
    upgrade(settings.database_url)
    typer.echo(f"database at revision {current_revision(settings.database_url)}")


@db_app.command("current")
@friendly_errors
def db_current() -> None:
    """Show the database's migration revision and the newest one available."""
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config, current_revision

    with open_db(require_schema=False) as (settings, _):
        rev = current_revision(settings.database_url)
        head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    typer.echo(f"current: {rev or '(not initialised)'}")
    typer.echo(f"head:    {head}")
    if rev != head:
        typer.echo("run `warden db upgrade`" if rev else "run `warden init`", err=True)


# --------------------------------------------------------------------------- users


@users_app.command("add")
@friendly_errors
def users_add(
    username: str = typer.Argument(..., help="Lowercase letters, digits and '_.@-'."),
    role: str = typer.Option(..., "--role", help="moderator, annotator, engineer or admin."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
) -> None:
    """Add a user (prompts for the password unless --password-stdin)."""
    from storage.db import unit_of_work
    from storage.users import create_user

    with open_db() as (_, engine):
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        with unit_of_work(engine) as s:
            user = create_user(s, username, password, role, actor=CLI_ACTOR)
    typer.echo(f"created {user.role.value} {user.username}")


@users_app.command("list")
@friendly_errors
def users_list(as_json: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """List users and their roles."""
    from storage.db import unit_of_work
    from storage.users import list_users

    with open_db() as (_, engine), unit_of_work(engine, read_only=True) as s:
        users = list_users(s)
    if as_json:
        _json_out(
            [
                {
                    "id": u.id,
                    "username": u.username,
                    "role": u.role.value,
                    "disabled": u.disabled,
                    "created_at": u.created_at.isoformat(),
                }
                for u in users
            ]
        )
        return
    table = Table("id", "username", "role", "status", "created")
    for u in users:
        table.add_row(
            str(u.id),
            Text(u.username),
            u.role.value,
            "disabled" if u.disabled else "active",
            _fmt_time(u.created_at),
        )
    _console().print(table)


@users_app.command("disable")
@friendly_errors
def users_disable(username: str = typer.Argument(...)) -> None:
    """Stop a user from logging in (their decisions stay attributed to them)."""
    from storage.db import unit_of_work
    from storage.users import disable_user

    with open_db() as (_, engine), unit_of_work(engine) as s:
        user = disable_user(s, username, actor=CLI_ACTOR)
    typer.echo(f"disabled {user.username}")


# --------------------------------------------------------------------------- items


def _item_row(v: Any) -> list[Any]:
    p, d = v.prediction, v.decision
    flags = "" if p is None else (", ".join(p.flagged) or "safe")
    score = "" if p is None else f"{p.max_score:.2f}"
    decision = "" if d is None else (", ".join(d.categories) or "safe")
    return [
        str(v.item_id),
        v.status.value,
        str(v.priority),
        Text(v.source),
        Text(v.filename or ""),
        flags,
        score,
        decision,
        _fmt_time(v.created_at),
    ]


@items_app.command("list")
@friendly_errors
def items_list(
    status: str | None = typer.Option(None, "--status", help="Status, or several: a,b."),
    source: str | None = typer.Option(None, "--source"),
    category: list[str] = typer.Option([], "--category", help="Model flagged this category."),
    disagreement: bool = typer.Option(False, "--disagreement", help="Model and humans differ."),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000),
    offset: int = typer.Option(0, "--offset", min=0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List items, newest first."""
    from storage.db import unit_of_work
    from storage.items import list_items

    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    with open_db() as (_, engine), unit_of_work(engine, read_only=True) as s:
        views = list_items(
            s,
            status=statuses,
            source=source,
            categories=tuple(category),
            disagreement_only=disagreement,
            limit=limit,
            offset=offset,
        )
    if as_json:
        _json_out([v.to_dict() for v in views])
        return
    table = Table("id", "status", "prio", "source", "file", "model", "max", "decision", "created")
    for v in views:
        table.add_row(*_item_row(v))
    _console().print(table)
    if not views:
        typer.echo("no items match", err=True)


@items_app.command("show")
@friendly_errors
def items_show(
    item_id: int = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One item: file facts, model scores, the decision history and the audit trail."""
    from storage.audit import list_audit
    from storage.db import unit_of_work
    from storage.decisions import decision_history
    from storage.items import decision_to_dict, get_item

    with open_db() as (_, engine), unit_of_work(engine, read_only=True) as s:
        v = get_item(s, item_id)
        history = decision_history(s, item_id)
        events = list_audit(s, item_id=item_id, limit=200)
        audit: list[dict[str, Any]] = [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "details": e.details,
            }
            for e in reversed(events)
        ]
    if as_json:
        data = v.to_dict()
        data["decision_history"] = [decision_to_dict(d) for d in history]
        data["audit"] = audit
        _json_out(data)
        return
    out = _console()
    facts = Table(show_header=False, title=f"item {v.item_id}")
    for key, value in [
        ("status", v.status.value),
        ("priority", v.priority),
        ("source", v.source),
        ("external id", v.external_id),
        ("file", v.filename),
        ("image", f"{v.width}x{v.height} {v.mime}{' animated' if v.animated else ''}"),
        ("blob", v.blob_sha256),
        ("phash", v.phash),
        ("text", v.text),
        ("near duplicate of", v.near_duplicate_of_id),
        ("hash bank match", v.hashbank_match_id),
        (
            "lease",
            f"{v.lease_holder} until {_fmt_time(v.lease_expires_at)}" if v.lease_holder else None,
        ),
        ("created", _fmt_time(v.created_at)),
    ]:
        if value not in (None, ""):
            facts.add_row(key, Text(str(value)))
    out.print(facts)
    p = v.prediction
    if p is not None:
        scores = Table(
            "category",
            "score",
            "flagged",
            title=f"prediction {p.model_version} ({p.policy_version})",
        )
        for cat, score in sorted(p.scores.items(), key=lambda kv: -kv[1]):
            scores.add_row(Text(cat), f"{score:.3f}", "yes" if cat in p.flagged else "")
        out.print(scores)
        for label, text in (("OCR", p.ocr_text), ("rationale", p.rationale)):
            if text:
                out.print(Text(f"{label}: {text}"))
    else:
        out.print("not scored yet")
    hist = Table(
        "id",
        "when",
        "action",
        "categories",
        "source",
        "reviewer",
        "supersedes",
        "note",
        title="decisions",
    )
    for d in history:
        hist.add_row(
            str(d.id),
            _fmt_time(d.created_at),
            d.action.value,
            ", ".join(d.categories) or ("safe" if d.action.value == "label" else ""),
            d.source.value,
            Text(d.reviewer or ""),
            str(d.supersedes_id or ""),
            Text(d.note or ""),
        )
    out.print(hist)
    trail = Table("when", "actor", "action", "details", title="audit")
    for e in audit:
        trail.add_row(
            e["at"][:19].replace("T", " "),
            Text(e["actor"]),
            e["action"],
            Text(json.dumps(e["details"], default=str)),
        )
    out.print(trail)


# --------------------------------------------------------------------------- export, stats


@export_app.command("decisions")
@friendly_errors
def export_decisions_command(
    out: Path = typer.Option(..., "--out", help="File to write."),
    fmt: str | None = typer.Option(
        None, "--format", help="csv, jsonl or parquet (default: from the file extension)."
    ),
    since: str | None = typer.Option(None, "--since", help="Only decisions made since (ISO)."),
) -> None:
    """Current decisions, one row per item, with categories, reviewer and model scores."""
    from storage.db import unit_of_work
    from storage.export import FORMATS, export_decisions

    if fmt is None:
        fmt = out.suffix.lstrip(".").lower()
        if fmt not in FORMATS:
            raise WardenError(f"give --format ({', '.join(FORMATS)}); cannot tell from {out.name}")
    since_dt = _parse_since(since)
    with open_db() as (_, engine), unit_of_work(engine, read_only=True) as s:
        n = export_decisions(s, out, fmt, since=since_dt)
    typer.echo(f"wrote {n} decisions to {out}")


@friendly_errors
def stats_command(as_json: bool = typer.Option(False, "--json")) -> None:
    """Queue counts by status, current decisions by category and source, backlog age."""
    from storage.db import unit_of_work
    from storage.items import queue_stats
    from storage.outbox import backlog

    with open_db() as (_, engine), unit_of_work(engine, read_only=True) as s:
        stats = queue_stats(s)
        stats["outbox"] = backlog(s)
    if as_json:
        _json_out(stats)
        return
    out = _console()
    t = Table("status", "items", title=f"{stats['items']} items")
    for status, n in stats["by_status"].items():
        t.add_row(status, str(n))
    out.print(t)
    b = stats["backlog"]
    age = b["oldest_open_age_s"]
    out.print(
        f"backlog: {b['open']} open, oldest {_fmt_age(age)}; "
        f"{b['in_review_expired']} reviews with an expired lease",
        markup=False,
    )
    d = stats["decisions"]
    t = Table("category", "items", title=f"current decisions: {d['current']} ({d['rows']} rows)")
    for cat, n in d["by_category"].items():
        t.add_row(Text(cat), str(n))
    out.print(t)
    t = Table("decision source", "items")
    for src, n in d["by_decision_source"].items():
        t.add_row(Text(src), str(n))
    out.print(t)
    t = Table("item source", "decided")
    for src, n in d["by_item_source"].items():
        t.add_row(Text(src), str(n))
    out.print(t)
    o = stats["outbox"]
    out.print(f"outbox: {o['pending']} pending, {o['done']} done, {o['dead']} dead", markup=False)


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


# --------------------------------------------------------------------------- audit, policy


@audit_app.command("tail")
@friendly_errors
def audit_tail(
    n: int = typer.Option(50, "-n", "--lines", min=1, help="How many recent events."),
    actor: str | None = typer.Option(None, "--actor"),
    action: str | None = typer.Option(None, "--action"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    interval: float = typer.Option(1.0, "--interval", help="Poll interval with --follow."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """The most recent audit events, oldest first; --follow keeps printing new ones."""
    from sqlalchemy import select

    from storage.audit import list_audit
    from storage.db import unit_of_work
    from storage.models import AuditEvent

    def show(events: list[Any]) -> None:
        for e in events:
            if as_json:
                typer.echo(
                    json.dumps(
                        {
                            "id": e.id,
                            "at": e.at.isoformat(),
                            "actor": e.actor,
                            "action": e.action,
                            "item_id": e.item_id,
                            "details": e.details,
                        },
                        default=str,
                    )
                )
            else:
                item = f" item={e.item_id}" if e.item_id is not None else ""
                details = json.dumps(e.details, default=str, ensure_ascii=False)
                typer.echo(f"{_fmt_time(e.at)} {e.actor} {e.action}{item} {details}")

    with open_db() as (_, engine):
        with unit_of_work(engine, read_only=True) as s:
            events = list(reversed(list_audit(s, limit=n, actor=actor, action=action)))
            last = (
                events[-1].id
                if events
                else (s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0)
            )
        show(events)
        if not follow:
            return
        try:
            while True:
                time.sleep(interval)
                with unit_of_work(engine, read_only=True) as s:
                    stmt = select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id)
                    if actor:
                        stmt = stmt.where(AuditEvent.actor == actor)
                    if action:
                        stmt = stmt.where(AuditEvent.action == action)
                    new = list(s.scalars(stmt.limit(1000)))
                if new:
                    show(new)
                    last = new[-1].id
                sys.stdout.flush()
        except KeyboardInterrupt:
            return


@policy_app.command("show")
@friendly_errors
def policy_show(
    path: Path | None = typer.Option(None, "--path", help="Policy YAML (default: configured)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Validate the policy and print its categories and version."""
    from storage.policy import load_policy
    from storage.settings import get_settings

    policy = load_policy(path or get_settings().policy_path)
    if as_json:
        data = policy.to_dict()
        data["version"] = policy.version
        _json_out(data)
        return
    table = Table(
        "id",
        "title",
        "threshold",
        "blur",
        "restricted",
        title=f"{policy.name}  version {policy.version}",
    )
    for c in policy.categories:
        table.add_row(
            c.id,
            Text(c.title),
            f"{c.threshold:.2f}",
            "yes" if c.blur else "",
            "yes" if c.restricted else "",
        )
    _console().print(table)


def register(cli: typer.Typer) -> None:
    """Attach the storage commands to the root `warden` CLI."""
    cli.command("init")(init_command)
    cli.command("stats")(stats_command)
    cli.add_typer(db_app, name="db")
    cli.add_typer(users_app, name="users")
    cli.add_typer(items_app, name="items")
    cli.add_typer(export_app, name="export")
    cli.add_typer(audit_app, name="audit")
    cli.add_typer(policy_app, name="policy")
