"""Which model is live: one resolver over the registry table, for every process.

The live model is a database fact (`model_versions.status = 'live'`, newest `promoted_at`
first). `live_row(session)` is the one query that says which row that is; the registry
(`training.registry.live_model`), the loader (`model.loading.live_backend`), the worker CLI and
`warden eval --model live` all go through it. `live_name` is its cheap form (one column), asked
by every serving process every few seconds to notice a promotion or a rollback made elsewhere.

`read_target(url, name)` reads a registry entry for loading, retrying a database error with
backoff and then raising `LiveModelUnavailable`: a process that cannot ask the registry fails
loudly rather than serve some other model.

Run: warden score --follow            # a worker that follows the live model
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from storage.errors import WardenError
from storage.models import ModelVersion

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

LIVE = "live"
# Tries of a registry read before giving up, and the first pause (doubled each time):
# 0.25 + 0.5 + 1 + 2 s, so a database restart of a few seconds is ridden out.
READ_ATTEMPTS = 5
READ_BACKOFF_S = 0.25

T = TypeVar("T")


class LiveModelUnavailable(WardenError):
    """The registry could not be read, so which model is live is unknown."""


@dataclass(frozen=True)
class RegistryTarget:
    """A registry entry as the loader needs it (duck-types training.registry.ModelVersionInfo)."""

    name: str
    uri: str
    adapter_uri: str | None
    calibration: dict[str, Any]


def _live_order() -> tuple[Any, Any]:
    return ModelVersion.promoted_at.desc(), ModelVersion.id.desc()


def live_row(session: Session) -> ModelVersion | None:
    """The live registry row, or None when no model is live. The one resolver."""
    stmt = select(ModelVersion).where(ModelVersion.status == LIVE).order_by(*_live_order())
    return session.scalars(stmt.limit(1)).first()


def live_name(session: Session) -> str | None:
    """The live version's name only: the cheap check a serving process makes often."""
    stmt = select(ModelVersion.name).where(ModelVersion.status == LIVE).order_by(*_live_order())
    return session.scalars(stmt.limit(1)).first()


def resolve_target(session: Session, name: str = LIVE) -> RegistryTarget | None:
    """The registry entry called `name` ("live": the live one), or None if there is none."""
    if name == LIVE:
        row = live_row(session)
    else:
        row = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
    if row is None:
        return None
    return RegistryTarget(row.name, row.uri, row.adapter_uri, dict(row.calibration or {}))


# --- reading the registry from a serving process ------------------------------------------

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _engine(database_url: str) -> Engine:
    """One engine per database URL for this module's frequent small reads."""
    from storage.db import make_engine

    with _engines_lock:
        engine = _engines.get(database_url)
        if engine is None:
            engine = _engines[database_url] = make_engine(database_url)
        return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _with_retries(
    database_url: str,
    read: Callable[[Session], T],
    *,
    attempts: int = READ_ATTEMPTS,
    backoff_s: float = READ_BACKOFF_S,
) -> T:
    from sqlalchemy.engine import make_url

    from storage.db import unit_of_work

    attempts = max(1, attempts)
    last: SQLAlchemyError | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            with unit_of_work(_engine(database_url)) as s:
                return read(s)
        except SQLAlchemyError as exc:
            last = exc
            log.warning("registry read failed (try %d of %d): %s", attempt + 1, attempts, exc)
    where = make_url(database_url).render_as_string(hide_password=True)
    cause = getattr(last, "orig", None) or last
    first_line = (str(cause).strip().splitlines() or [""])[0]
    raise LiveModelUnavailable(
        f"cannot read the model registry at {where} after {attempts} tries "
        f"({type(cause).__name__}: {first_line}); which model is live is unknown, so nothing "
        "is scored"
    ) from last


def read_target(database_url: str, name: str = LIVE, **retry: Any) -> RegistryTarget | None:
    """`resolve_target` against `database_url`; a database error is retried, then raised as
    `LiveModelUnavailable` (never taken to mean "no live model")."""
    return _with_retries(database_url, lambda s: resolve_target(s, name), **retry)


def read_live_name(database_url: str, **retry: Any) -> str | None:
    """`live_name` against `database_url`, with the same retries and error as `read_target`."""
    return _with_retries(database_url, live_name, **retry)
