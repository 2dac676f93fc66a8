"""After an outage, a push that selects nothing new still sends the batches that wait."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from storage import outbox
from storage.db import unit_of_work
from storage.policy import Policy
from storage.settings import Settings
from tests.labelstudio.conftest import MakeItems, make_outbox_due
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import setup
from training.labelstudio.server import LabelStudioServer
from training.labelstudio.sync import TOPIC_PUSH, push

pytestmark = pytest.mark.labelstudio


def test_push_after_outage_with_nothing_new_delivers_waiting_batches(
    ls_settings: Settings,
    engine: Engine,
    ls_server: LabelStudioServer,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
) -> None:
    state = setup(ls_settings, client=ls_client)
    items = make_items([{"weapons": 0.3 + i * 0.02} for i in range(7)])
    ls_server.stop()
    try:
        down = push(
            ls_settings,
            engine,
            budget=7,
            batch_size=3,
            image_mode="data",
            client=ls_client,
            policy=policy,
        )
        assert down.selected == 7 and down.batches == 3
        assert down.delivered is not None and down.delivered.done == 0
        assert down.delivered.pending == 3
    finally:
        ls_server.start()
    assert list(ls_client.iter_tasks(state.project_id)) == []
    make_outbox_due(engine)

    again = push(ls_settings, engine, budget=7, image_mode="data", client=ls_client, policy=policy)
    assert again.selected == 0 and again.batches == 0
    assert again.delivered is not None
    assert again.delivered.done == 3 and again.delivered.pending == 0
    in_ls = sorted(t["data"]["warden_item_id"] for t in ls_client.iter_tasks(state.project_id))
    assert in_ls == sorted(items)
    with unit_of_work(engine) as s:
        assert outbox.backlog(s, TOPIC_PUSH) == {"pending": 0, "done": 3, "dead": 0}

    # Nothing waits and nothing is new: nothing to send, and no call to Label Studio.
    idle = push(ls_settings, engine, budget=7, image_mode="data", client=ls_client)
    assert idle.selected == 0 and idle.delivered is None
