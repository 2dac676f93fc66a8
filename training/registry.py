"""Model registry and promotion gate: which model versions exist, which one is live.

A model version is a row in `model_versions` (candidate | live | retired | rolled_back). A
candidate becomes live only through `promote`, which runs the gate (`training.gate`) on the
same golden + retention rows for candidate and live: average recall with a margin the sample
supports, each category, retention and the benign flag rate; missing rows refuse. Forcing past
a refusal takes an admin and a reason, both audited. `rollback`
puts the previous live model back. Every change writes an audit event. Which model is live is
the database's answer (`model.live.live_row`, the one resolver): every serving process, in any
process or machine, asks it every few seconds and swaps without a restart (see
`model.loading.live_backend`). After the commit, this process's own check is made due at once
and any `on_live_change` listener is told.

Run: warden models list | warden models promote NAME | warden models rollback
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from model.live import live_row
from storage.audit import record_audit
from storage.errors import Conflict, NotFound, PermissionDenied, WardenError
from storage.models import ModelVersion
from training.gate import GateCheck, GateSettings, gate

__all__ = ["GateCheck", "GateResult", "GateSettings", "gate", "promote", "rollback"]

log = logging.getLogger(__name__)

CANDIDATE, LIVE, RETIRED, ROLLED_BACK = "candidate", "live", "retired", "rolled_back"


@dataclass(frozen=True)
class ModelVersionInfo:
    id: int
    name: str
    uri: str
    base_model: str | None
    adapter_uri: str | None
    status: str
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    created_at: datetime
    promoted_at: datetime | None


@dataclass(frozen=True)
class GateResult:
    """Outcome of `promote`: whether the candidate went live, and every check with its numbers."""

    promoted: bool
    candidate: str
    live: str | None
    eval_key: str | None
    checks: list[GateCheck] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    forced: bool = False
    force_reason: str | None = None

    def summary(self) -> str:
        head = "promoted" if self.promoted else "refused"
        if self.forced:
            head += f" (forced: {self.force_reason})" if self.force_reason else " (forced)"
        return f"{head}: {self.candidate} (live was {self.live or 'none'}); " + (
            "; ".join(self.reasons) or "all checks passed"
        )


def _info(row: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(
        id=row.id,
        name=row.name,
        uri=row.uri,
        base_model=row.base_model,
        adapter_uri=row.adapter_uri,
        status=row.status,
        metrics=dict(row.metrics or {}),
        manifest=dict(row.manifest or {}),
        created_at=row.created_at,
        promoted_at=row.promoted_at,
    )


# --- live-change hooks ----------------------------------------------------------------------

_listeners: list[Callable[[ModelVersionInfo | None], None]] = []


def on_live_change(fn: Callable[[ModelVersionInfo | None], None]) -> Callable[[], None]:
    """Call `fn(new_live)` after promote/rollback in this process; returns an unsubscribe."""
    _listeners.append(fn)
    return lambda: _listeners.remove(fn) if fn in _listeners else None


def _notify_after_commit(session: Session, live: ModelVersionInfo) -> None:
    """Tell the swap hook only once the change is committed (the caller owns the unit of work)."""
    event.listen(session, "after_commit", lambda _s: _notify(live), once=True)


def _notify(live: ModelVersionInfo | None) -> None:
    from model.loading import mark_live_stale

    # Nothing is loaded here (a CLI `warden models promote` must not load a model): a serving
    # process picks the new version up on its next `live_backend` call, this one at once.
    mark_live_stale()
    for fn in list(_listeners):
        try:
            fn(live)
        except Exception:
            log.exception("live-change listener failed")


# --- queries --------------------------------------------------------------------------------


def _get(session: Session, name: str) -> ModelVersion:
    row = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
    if row is None:
        raise NotFound(f"no model version named {name!r}; see `warden models list`")
    return row


def get_model(session: Session, name: str) -> ModelVersionInfo:
    return _info(_get(session, name))


def list_models(session: Session) -> list[ModelVersionInfo]:
    rows = session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
    return [_info(r) for r in rows]


def live_model(session: Session) -> ModelVersionInfo | None:
    row = live_row(session)
    return _info(row) if row else None


def register_model(
    session: Session,
    name: str,
    uri: str,
    *,
    actor: str,
    base_model: str | None = None,
    adapter_uri: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    manifest: Mapping[str, Any] | None = None,
    live: bool = False,
) -> ModelVersionInfo:
    """Add a candidate (or, with `live=True` and no live model yet, the first live model)."""
    if not name.strip():
        raise WardenError("a model version needs a non-empty name")
    if session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first():
        raise Conflict(f"model version {name!r} already exists")
    status = CANDIDATE
    now = datetime.now(UTC)
    if live:
        if live_model(session) is not None:
            raise Conflict("a live model exists; register as candidate and `promote` it")
        status = LIVE
    row = ModelVersion(
        name=name,
        uri=uri,
        base_model=base_model,
        adapter_uri=adapter_uri,
        status=status,
        metrics=dict(metrics or {}),
        manifest=dict(manifest or {}),
        promoted_at=now if live else None,
    )
    session.add(row)
    session.flush()
    record_audit(session, actor, "model.register", name=name, uri=uri, status=status)
    return _info(row)


def record_eval(
    session: Session, name: str, eval_key: str, summary: Mapping[str, Any]
) -> ModelVersionInfo:
    """Store an evaluation summary under `metrics["evals"][eval_key]` (the manifest's hash)."""
    row = _get(session, name)
    metrics = dict(row.metrics or {})
    evals = dict(metrics.get("evals") or {})
    evals[eval_key] = dict(summary)
    metrics["evals"] = evals
    metrics["last_eval"] = eval_key
    row.metrics = metrics  # reassign: JSON columns do not track in-place mutation
    session.flush()
    return _info(row)


# --- the gate -------------------------------------------------------------------------------


def _common_eval(cand: ModelVersion, live: ModelVersion) -> str | None:
    """The set both were evaluated on: a dataset's golden split (`warden eval --dataset`, the
    latest), else the candidate's last evaluation, else the latest common one."""
    c_evals = (cand.metrics or {}).get("evals") or {}
    l_evals = (live.metrics or {}).get("evals") or {}
    common = [k for k in c_evals if k in l_evals]
    golden = [k for k in common if k.startswith("dataset:") and k.endswith(":golden")]
    last = (cand.metrics or {}).get("last_eval")
    if not golden and last in common:
        return last
    return (golden or common or [None])[-1]


def _check_force(session: Session, actor: str, reason: str | None) -> None:
    """Forcing past the gate takes an active admin (a `users` row) and a stated reason."""
    from storage.users import get_user

    try:
        user = get_user(session, actor)
    except NotFound:
        user = None
    if user is None or user.disabled or user.role.value != "admin":
        raise PermissionDenied(
            f"only an admin may force a promotion past the gate; {actor!r} is not an active admin"
        )
    if reason is not None and not reason.strip():
        raise WardenError("a forced promotion needs a reason (--reason)")


def promote(
    session: Session,
    name: str,
    actor: str,
    *,
    force: bool = False,
    reason: str | None = None,
    eval_key: str | None = None,
    tolerance: float = 0.03,
    retention_tolerance: float = 0.01,
    benign_tolerance: float = 0.02,
    settings: GateSettings | None = None,
) -> GateResult:
    """Make `name` live if it passes the gate against the current live model.

    The gate compares the two models' stored evaluations on one set: `eval_key` when given
    (e.g. a dataset's golden split), else the one `_common_eval` picks. `force` promotes past
    a refusal only when `actor` is an active admin; the audit event records who, why
    (`reason`) and every refused line. `settings` overrides the tolerances given one by one.
    """
    cfg = settings or GateSettings(
        tolerance=tolerance,
        retention_tolerance=retention_tolerance,
        benign_tolerance=benign_tolerance,
    )
    cand = _get(session, name)
    if cand.status == LIVE:
        raise Conflict(f"{name!r} is already live")
    current = session.scalars(select(ModelVersion).where(ModelVersion.status == LIVE)).first()
    checks: list[GateCheck] = []
    reasons: list[str] = []
    passed = True
    if current is not None:
        c_evals = (cand.metrics or {}).get("evals") or {}
        l_evals = (current.metrics or {}).get("evals") or {}
        eval_key = eval_key or _common_eval(cand, current)
        if eval_key is None or eval_key not in c_evals or eval_key not in l_evals:
            passed = False
            where = "a common set" if eval_key is None else eval_key
            reasons.append(
                f"candidate and live have no evaluation on {where}; "
                f"run `warden eval --model {name} --dataset DIR --against live` "
                "(or `warden models promote NAME --dataset DIR`)"
            )
        else:
            passed, checks, reasons = gate(c_evals[eval_key], l_evals[eval_key], cfg)
    if force and not passed:
        _check_force(session, actor, reason)
    result = GateResult(
        promoted=passed or force,
        candidate=name,
        live=current.name if current else None,
        eval_key=eval_key,
        checks=checks,
        reasons=reasons,
        forced=force and not passed,
        force_reason=reason if force and not passed else None,
    )
    record_audit(
        session,
        actor,
        "model.promote" if result.promoted else "model.promote_refused",
        name=name,
        previous=result.live,
        eval_key=eval_key,
        forced=result.forced,
        force_reason=result.force_reason,
        reasons=reasons,
        checks=[
            {"name": c.name, "delta": c.delta, "bound": c.bound, "passed": c.passed} for c in checks
        ],
    )
    if not result.promoted:
        return result
    now = datetime.now(UTC)
    if current is not None:
        current.status = RETIRED
    cand.status = LIVE
    cand.promoted_at = now
    session.flush()
    _notify_after_commit(session, _info(cand))
    return result


def rollback(session: Session, actor: str) -> ModelVersionInfo:
    """Put the previously live model back; the current one is marked rolled_back."""
    current = session.scalars(select(ModelVersion).where(ModelVersion.status == LIVE)).first()
    if current is None:
        raise Conflict("no live model to roll back")
    previous = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.status == RETIRED, ModelVersion.promoted_at.is_not(None))
        .order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc())
    ).first()
    if previous is None:
        raise Conflict(f"{current.name!r} is the only model ever live; nothing to roll back to")
    current.status = ROLLED_BACK
    previous.status = LIVE
    # The restored model keeps its original promoted_at: rollback history lives in the audit.
    session.flush()
    record_audit(session, actor, "model.rollback", name=previous.name, from_name=current.name)
    info = _info(previous)
    _notify_after_commit(session, info)
    return info
