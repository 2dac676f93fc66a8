"""`warden labelstudio outbox list|retry|deliver`: dead-lettered messages are visible and can be
sent again once their cause is fixed."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from typer.testing import CliRunner

from storage import outbox
from storage.db import unit_of_work
from storage.policy import Policy
from storage.settings import Settings
from tests.labelstudio.conftest import MakeItems, ls_settings_for
from training.labelstudio.cli import app
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import setup
from training.labelstudio.server import LabelStudioServer
from training.labelstudio.sync import TOPIC_PUSH, deliver, push

pytestmark = pytest.mark.labelstudio


def test_dead_letters_listed_requeued_and_sent(
    settings: Settings,
    ls_settings: Settings,
    engine: Engine,
    ls_server: LabelStudioServer,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
    cli_env: CliRunner,
) -> None:
    state = setup(ls_settings, client=ls_client)
    items = make_items([{"weapons": 0.3 + i * 0.02} for i in range(4)])
    # A wrong API key: Label Studio refuses every batch, which then gives up (dead letter).
    wrong = ls_settings_for(settings, ls_server, api_key=SecretStr("f" * 40))
    queued = push(
        wrong,
        engine,
        budget=4,
        batch_size=2,
        image_mode="data",
        policy=policy,
        deliver_now=False,
    )
    assert queued.batches == 2
    gave_up = deliver(wrong, engine, policy=policy, topics=(TOPIC_PUSH,), max_attempts=1)
    assert gave_up.failed == 2 and gave_up.pending == 0
    with unit_of_work(engine) as s:
        assert outbox.backlog(s, TOPIC_PUSH)["dead"] == 2
        dead_ids = [m.id for m in outbox.list_messages(s)]

    run = cli_env.invoke
    listed = run(app, ["outbox", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "kind", "attempts", "age", "last", "error"]
    rows = [line.split(None, 4) for line in lines[1:]]
    assert [int(r[0]) for r in rows] == dead_ids
    assert all(r[1] == TOPIC_PUSH and r[2] == "1" and r[3].endswith("s") for r in rows)
    assert all("rejected the API key" in r[4] for r in rows)
    as_json = json.loads(run(app, ["outbox", "list", "--json"]).stdout)
    assert [m["id"] for m in as_json] == dead_ids
    assert all(m["status"] == "dead" and m["attempts"] == 1 for m in as_json)
    assert run(app, ["outbox", "list", "--pending"]).stdout.strip() == "no pending messages"
    status = run(app, ["status"])
    assert status.exit_code == 0, status.output
    assert (
        "outbox ls.push: 0 pending, 2 dead, 0 done (see `warden labelstudio outbox list`)"
        in status.stdout
    )

    # Bad input: a clear line and exit status 2, nothing requeued.
    for args, message in (
        (["outbox", "retry"], "or --all"),
        (["outbox", "retry", "999999"], "not dead Label Studio messages: 999999"),
        (["outbox", "retry", str(dead_ids[0]), "--all"], "or --all"),
    ):
        res = run(app, args)
        assert res.exit_code == 2 and message in res.output, res.output
        assert "Traceback" not in res.output

    # The key is fixed (the CLI's settings carry the right one): requeue one, deliver it.
    res = run(app, ["outbox", "retry", str(dead_ids[0])])
    assert res.exit_code == 0 and "requeued 1 message;" in res.stdout, res.output
    assert [
        int(line.split()[0]) for line in run(app, ["outbox", "list"]).stdout.splitlines()[1:]
    ] == [dead_ids[1]]
    sent = run(app, ["outbox", "deliver"])
    assert sent.exit_code == 0 and "messages: 1 sent, 0 waiting" in sent.stdout, sent.output
    assert len(list(ls_client.iter_tasks(state.project_id))) == 2

    # --all requeues the rest; the next push sends it although it selects nothing new.
    res = run(app, ["outbox", "retry", "--all"])
    assert res.exit_code == 0 and "requeued 1 message;" in res.stdout, res.output
    pushed = run(app, ["push", "--budget", "4", "--data-uris"])
    assert pushed.exit_code == 0, pushed.output
    assert "selected 0 items" in pushed.stdout and "batches: 1 sent, 0 waiting" in pushed.stdout
    in_ls = sorted(t["data"]["warden_item_id"] for t in ls_client.iter_tasks(state.project_id))
    assert in_ls == sorted(items)
    assert run(app, ["outbox", "list"]).stdout.strip() == "no dead messages"
