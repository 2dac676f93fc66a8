"""Label Studio goes down in the middle of a push: nothing is lost or sent twice."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import Engine, select

from storage import outbox
from storage.db import unit_of_work
from storage.decisions import decision_history
from storage.domain import DecisionSource
from storage.models import LabelStudioTask, OutboxMessage, utcnow
from storage.policy import Policy
from storage.settings import Settings
from tests.labelstudio.conftest import MakeItems, choices_result, make_outbox_due
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import MEDIA_TEXT, setup
from training.labelstudio.server import LabelStudioServer
from training.labelstudio.status import labelstudio_status
from training.labelstudio.sync import TOPIC_PUSH, deliver, pull, push

pytestmark = pytest.mark.labelstudio


def _task_counts(client: LabelStudioClient, project_id: int) -> Counter[int]:
    return Counter(t["data"]["warden_item_id"] for t in client.iter_tasks(project_id))


def test_server_stopped_mid_push_every_task_and_annotation_arrives_once(
    ls_settings: Settings,
    engine: Engine,
    ls_server: LabelStudioServer,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
) -> None:
    state = setup(ls_settings, client=ls_client)
    items = make_items([{"weapons": 0.3 + i * 0.01} for i in range(12)])

    def stop_after_first(msg: outbox.OutboxItem) -> None:
        if ls_server.running:
            ls_server.stop()  # SIGTERM, as an operator or a crash would

    try:
        report = push(
            ls_settings,
            engine,
            budget=12,
            batch_size=4,
            image_mode="data",
            client=ls_client,
            policy=policy,
            deliver_now=False,
        )
        assert report.batches == 3
        first = deliver(
            ls_settings, engine, client=ls_client, policy=policy, after_message=stop_after_first
        )
        assert first.done == 1 and first.failed == 2
        assert "unreachable" in (first.last_error or "")
        st = labelstudio_status(ls_settings, engine, client=ls_client)
        assert st["reachable"] is False and "unreachable" in st["error"]
        assert st["backlog"][TOPIC_PUSH]["pending"] == 2
        assert st["tasks_pushed"] == 4 and st["tasks_waiting"] == 8
    finally:
        ls_server.start()

    # A batch whose import reached Label Studio but whose answer was lost: simulate by
    # importing one waiting batch's rows directly, as a crashed sender would have.
    with unit_of_work(engine) as s:
        msg = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .order_by(OutboxMessage.id)
        ).first()
        rows = list(
            s.scalars(select(LabelStudioTask).where(LabelStudioTask.id.in_(msg.payload["rows"])))
        )
        for r in rows:
            r.pushed_at = utcnow()
        lost = [
            {
                "data": {
                    "image": "data:,",
                    # A project that shows every medium needs the list and its text too.
                    "images": ["data:,"],
                    MEDIA_TEXT: "Image 1 of 1",
                    "text": "",
                    "warden_item_id": r.item_id,
                    "warden_push": r.id,
                    "scores": {},
                }
            }
            for r in rows
        ]
    ls_client.import_tasks(state.project_id, lost)

    make_outbox_due(engine)
    second = deliver(ls_settings, engine, client=ls_client, policy=policy)
    assert second.failed == 0 and second.done == 2
    assert sum(r.get("recovered", 0) for r in second.results) == 4
    counts = _task_counts(ls_client, state.project_id)
    assert counts == Counter({i: 1 for i in items})
    with unit_of_work(engine) as s:
        rows = s.scalars(select(LabelStudioTask)).all()
    assert len(rows) == 12 and all(r.task_id is not None for r in rows)
    assert len({r.task_id for r in rows}) == 12

    # Annotate every task, then the server dies before anyone pulls; after it is back,
    # every annotation becomes exactly one decision, however many pulls run.
    for t in ls_client.iter_tasks(state.project_id):
        ls_client.create_annotation(
            t["id"],
            choices_result("weapons"),
        )
    ls_server.stop()
    try:
        down = pull(ls_settings, engine, client=ls_client, policy=policy)
        assert down.failed == 1 and down.done == 0
    finally:
        ls_server.start()
    make_outbox_due(engine)
    up = pull(ls_settings, engine, client=ls_client, policy=policy)
    assert up.done == 1
    pull(ls_settings, engine, client=ls_client, policy=policy)
    with unit_of_work(engine) as s:
        per_item = {
            i: [d for d in decision_history(s, i) if d.source == DecisionSource.label_studio]
            for i in items
        }
        assert all(len(v) == 1 and v[0].categories == ["weapons"] for v in per_item.values())
        assert outbox.backlog(s, TOPIC_PUSH)["pending"] == 0
