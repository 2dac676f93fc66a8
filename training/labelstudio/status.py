"""What `warden labelstudio status` and the workbench panel show: connection, project,
tasks pushed and waiting, decisions pulled, outbox backlog, and agreement per category.

Run: warden labelstudio status [--json]
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from storage import outbox
from storage.db import unit_of_work
from storage.domain import DecisionSource
from storage.errors import WardenError
from storage.models import Decision, LabelStudioTask
from storage.settings import Settings
from training.labelstudio.agreement import category_agreement
from training.labelstudio.client import LabelStudioClient, connect
from training.labelstudio.project import load_state
from training.labelstudio.sync import TOPICS


def labelstudio_status(
    settings: Settings,
    engine: Engine,
    *,
    client: LabelStudioClient | None = None,
    check: bool = True,
) -> dict[str, Any]:
    """A plain dict; never raises for an unreachable server (it says so in `error`)."""
    state = load_state(settings)
    pid = settings.labelstudio.project_id or (state.project_id if state else None)
    out: dict[str, Any] = {
        "url": settings.labelstudio.url,
        "project_id": pid,
        "policy_version": state.policy_version if state else None,
        "webhook_url": state.webhook_url if state else None,
        "reachable": None,
        "error": None,
    }
    if check:
        try:
            c = client or connect(settings.labelstudio)
            try:
                who = c.check()
                out["reachable"] = True
                out["user"] = who.get("email") or who.get("username")
            finally:
                if client is None:
                    c.close()
        except WardenError as exc:
            out["reachable"] = False
            out["error"] = str(exc)
    with unit_of_work(engine) as s:
        tasks = select(func.count()).select_from(LabelStudioTask)
        if pid is not None:
            tasks = tasks.where(LabelStudioTask.project_id == pid)
        out["tasks_pushed"] = int(s.scalar(tasks.where(LabelStudioTask.task_id.is_not(None))))
        out["tasks_waiting"] = int(s.scalar(tasks.where(LabelStudioTask.task_id.is_(None))))
        out["decisions_pulled"] = int(
            s.scalar(
                select(func.count())
                .select_from(Decision)
                .where(Decision.source == DecisionSource.label_studio.value)
            )
        )
        out["backlog"] = {t: outbox.backlog(s, t) for t in TOPICS}
        out["agreement"] = category_agreement(s, project_id=pid)
    return out
