"""Full round trip against a real Label Studio: setup, push with pre-annotations, an annotator
annotates through the API, the webhook turns it into a decision, updates supersede, deletions
retract, replays and reconciles never duplicate."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from sqlalchemy import Engine, func, select

from storage.db import unit_of_work
from storage.decisions import current_decision, decision_history
from storage.domain import DecisionAction, DecisionSource
from storage.models import Decision, LabelStudioTask
from storage.policy import Policy
from storage.settings import Settings
from tests.labelstudio.conftest import (
    WEBHOOK_SECRET,
    MakeItems,
    WebhookServer,
    choices_result,
    wait_for,
)
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import setup
from training.labelstudio.sync import pull, push, reconcile

pytestmark = pytest.mark.labelstudio


def _ls_decisions(engine: Engine, item_id: int) -> list:
    with unit_of_work(engine) as s:
        return [d for d in decision_history(s, item_id) if d.source == DecisionSource.label_studio]


def test_round_trip_push_annotate_webhook_decision(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
    webhook_server: WebhookServer,
) -> None:
    state = setup(ls_settings, webhook_url=webhook_server.url, client=ls_client)
    project = ls_client.get_project(state.project_id)
    assert project is not None
    assert 'choice="multiple"' in project["label_config"]
    assert "child_safety" not in project["label_config"]

    weapons, unsure = make_items([{"weapons": 0.91}, {"drugs": 0.48}])
    report = push(
        ls_settings, engine, budget=10, image_mode="data", client=ls_client, policy=policy
    )
    assert report.selected == 2 and report.delivered is not None
    assert report.delivered.done == 1 and report.delivered.failed == 0

    tasks = {
        t["data"]["warden_item_id"]: t
        for t in ls_client.iter_tasks(state.project_id, with_annotations=True)
    }
    assert set(tasks) == {weapons, unsure}
    task = tasks[weapons]
    assert task["data"]["image"].startswith("data:image/png;base64,")
    assert "child_safety" not in task["data"]["scores"]
    pred = task["predictions"][0]
    assert pred["model_version"] == "demo-v1"
    assert pred["score"] == pytest.approx(0.91)
    assert pred["result"][0]["value"]["choices"] == ["weapons"]
    assert tasks[unsure]["predictions"][0]["result"][0]["value"]["choices"] == ["safe"]

    # An annotator (a second Label Studio user) labels the task: the webhook records it.
    annotator = ls_client.create_user(f"ann-{state.project_id}@warden.test", "annotator-pass-1")
    ann_id = ls_client.create_annotation(
        task["id"],
        choices_result("weapons", "drugs")
        + [
            {
                "from_name": "note",
                "to_name": "image",
                "type": "textarea",
                "value": {"text": ["rifle for sale"]},
            }
        ],
        completed_by=annotator,
    )
    wait_for(lambda: _ls_decisions(engine, weapons))
    first = _ls_decisions(engine, weapons)
    assert len(first) == 1
    d = first[0]
    assert d.categories == ["weapons", "drugs"]
    assert d.reviewer == f"ann-{state.project_id}@warden.test"
    assert d.note == "rifle for sale"
    assert d.external_ref.startswith(f"ls:{state.project_id}:{ann_id}:")

    # The annotator changes their mind: a superseding decision, the old one kept.
    ls_client.update_annotation(ann_id, choices_result("safe"))
    wait_for(lambda: len(_ls_decisions(engine, weapons)) == 2)
    history = _ls_decisions(engine, weapons)
    assert history[1].categories == [] and history[1].supersedes_id == history[0].id
    with unit_of_work(engine) as s:
        assert current_decision(s, weapons).id == history[1].id

    # Replays: a reconcile and a second pull add nothing.
    for _ in range(2):
        r = reconcile(ls_settings, engine, ls_client, policy=policy)
        assert r.recorded == 0 and r.retracted == 0 and r.seen == 1
    assert len(_ls_decisions(engine, weapons)) == 2

    # Deletion in Label Studio retracts the decision.
    ls_client.delete_annotation(ann_id)
    wait_for(lambda: len(_ls_decisions(engine, weapons)) == 3)
    last = _ls_decisions(engine, weapons)[-1]
    assert last.action == DecisionAction.retract
    with unit_of_work(engine) as s:
        assert current_decision(s, weapons) is None
    pull(ls_settings, engine, client=ls_client, policy=policy)
    assert len(_ls_decisions(engine, weapons)) == 3

    # Nothing is pushed twice without --rereview; with it, a second round task is created.
    again = push(ls_settings, engine, budget=10, image_mode="data", client=ls_client)
    assert again.selected == 0
    again = push(
        ls_settings,
        engine,
        budget=10,
        image_mode="data",
        client=ls_client,
        rereview=True,
        strategies=("uncertainty",),
    )
    assert again.selected == 2
    with unit_of_work(engine) as s:
        rounds = s.scalars(
            select(LabelStudioTask.round).where(LabelStudioTask.item_id == weapons)
        ).all()
    assert sorted(rounds) == [1, 2]


def test_webhook_refuses_wrong_secret_and_reconcile_catches_missed_events(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
    webhook_server: WebhookServer,
) -> None:
    # No webhook registered: annotations are only found by the reconcile.
    state = setup(ls_settings, client=ls_client)
    (item,) = make_items([{"scam_fraud": 0.55}])
    push(ls_settings, engine, budget=5, image_mode="data", client=ls_client, policy=policy)
    (task,) = list(ls_client.iter_tasks(state.project_id))
    ls_client.create_annotation(task["id"], choices_result("scam_fraud"))
    assert _ls_decisions(engine, item) == []
    r = pull(ls_settings, engine, client=ls_client, policy=policy)
    assert r.done == 1 and r.results[0]["recorded"] == 1
    (d,) = _ls_decisions(engine, item)
    assert d.categories == ["scam_fraud"] and d.reviewer == "admin@warden.test"

    body = json.dumps({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}]}).encode()
    for headers in ({}, {"X-Warden-Webhook-Secret": "wrong"}):
        req = urllib.request.Request(webhook_server.url, data=body, headers=headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 401
    req = urllib.request.Request(
        webhook_server.url,
        data=b"not json",
        headers={"X-Warden-Webhook-Secret": WEBHOOK_SECRET},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == 1
