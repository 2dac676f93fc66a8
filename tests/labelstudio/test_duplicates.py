"""Duplicate tasks: a lost import answer must not make Label Studio hold an item twice, and two
tasks that carry the same `warden_push` id are one Warden task when annotations come back."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from types import TracebackType

import pytest
from sqlalchemy import Engine

from storage.db import unit_of_work
from storage.policy import Policy
from storage.settings import Settings
from tests.labelstudio.conftest import MakeItems, choices_result, make_outbox_due
from training.curation import resolve_labels
from training.dataset import read_ledger
from training.labelstudio.agreement import annotation_labels
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import setup
from training.labelstudio.server import LabelStudioServer, free_port
from training.labelstudio.sync import deliver, pull, push

pytestmark = pytest.mark.labelstudio


class LostAnswerProxy:
    """A TCP proxy on 127.0.0.1 in front of Label Studio. It forwards every byte both ways,
    except once: the first request whose request line contains `trigger` reaches Label Studio,
    and as soon as Label Studio starts answering, the client's connection is closed instead
    (the answer is lost after the server did the work). Threads stop by themselves when the
    proxy is closed or after `life_s`."""

    def __init__(self, upstream_port: int, trigger: bytes, *, life_s: float = 180.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._upstream = upstream_port
        self._trigger = trigger
        self._deadline = time.monotonic() + life_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.armed = True
        self.dropped = threading.Event()  # set once an answer was swallowed
        self.requests: list[bytes] = []  # request lines seen (first line of each chunk)
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def __enter__(self) -> LostAnswerProxy:
        self._threads[0].start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        self._stop.set()
        for t in list(self._threads):
            t.join(5)
        self._listener.close()

    def _live(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _accept(self) -> None:
        while self._live():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self._upstream), timeout=5)
            for s in (client, upstream):
                s.settimeout(0.2)
            conn = {"drop": False}
            for target in (self._to_upstream, self._to_client):
                t = threading.Thread(target=target, args=(client, upstream, conn), daemon=True)
                self._threads.append(t)
                t.start()

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _to_upstream(self, client: socket.socket, upstream: socket.socket, conn: dict) -> None:
        while self._live():
            try:
                chunk = client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            line = chunk.split(b"\r\n", 1)[0]
            if line[:4] in (b"GET ", b"POST", b"PUT ", b"PATC", b"DELE"):
                self.requests.append(line)
                with self._lock:
                    if self.armed and self._trigger in line:
                        self.armed = False
                        conn["drop"] = True  # set before LS can possibly answer
            try:
                upstream.sendall(chunk)
            except OSError:
                break
        self._close(client, upstream)

    def _to_client(self, client: socket.socket, upstream: socket.socket, conn: dict) -> None:
        while self._live():
            try:
                chunk = upstream.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            if conn["drop"]:
                self.dropped.set()
                break
            try:
                client.sendall(chunk)
            except OSError:
                break
        self._close(client, upstream)


def test_lost_import_answer_leaves_one_task_per_item(
    ls_settings: Settings,
    engine: Engine,
    ls_server: LabelStudioServer,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
) -> None:
    state = setup(ls_settings, client=ls_client)
    items = make_items([{"weapons": 0.3 + i * 0.02} for i in range(5)])
    upstream_port = int(ls_server.url.rsplit(":", 1)[1])
    with LostAnswerProxy(upstream_port, f"/api/projects/{state.project_id}/import".encode()) as px:
        via_proxy = LabelStudioClient(px.url, ls_server.api_key)
        try:
            first = push(
                ls_settings,
                engine,
                budget=5,
                image_mode="data",
                client=via_proxy,
                policy=policy,
            )
            assert px.dropped.wait(10), "the proxy never swallowed the import answer"
            # Warden sees the lost answer as an outage; its outbox keeps the batch.
            assert first.delivered is not None and first.delivered.failed == 1
            imports = [r for r in px.requests if b"/import" in r]
            assert len(imports) == 1, f"the import was posted {len(imports)} times"
            make_outbox_due(engine)
            second = deliver(ls_settings, engine, client=via_proxy, policy=policy)
        finally:
            via_proxy.close()
    assert second.done == 1 and second.failed == 0
    assert second.results[0]["recovered"] == 5 and second.results[0]["imported"] == 0
    counts = Counter(t["data"]["warden_item_id"] for t in ls_client.iter_tasks(state.project_id))
    assert counts == Counter({i: 1 for i in items})


def test_two_tasks_of_one_push_id_are_one_task_with_two_annotators(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
) -> None:
    state = setup(ls_settings, client=ls_client)
    (item,) = make_items([{"weapons": 0.45}])
    push(ls_settings, engine, budget=1, image_mode="data", client=ls_client, policy=policy)
    (task,) = list(ls_client.iter_tasks(state.project_id))
    # What an SDK re-post beneath Warden left behind: a second task with the same push id.
    (dup_id,) = ls_client.import_tasks(state.project_id, [{"data": dict(task["data"])}])
    other = ls_client.create_user(f"dup-{state.project_id}@warden.test", "dup-annotator-1")
    first_ann = ls_client.create_annotation(task["id"], choices_result("weapons"))
    second_ann = ls_client.create_annotation(dup_id, choices_result("safe"), completed_by=other)

    r = pull(ls_settings, engine, client=ls_client, policy=policy)
    assert r.done == 1 and r.results[0]["recorded"] == 2
    with unit_of_work(engine) as s:
        ratings = annotation_labels(s, project_id=state.project_id)
        (ledger_item,) = [i for i in read_ledger(s) if i.item_id == item]
    # Both annotations are agreement data for the one item.
    assert sorted(map(sorted, ratings[item])) == [[], ["weapons"]]
    decisions = ledger_item.decisions
    assert len(decisions) == 2
    by_ann = {d.reviewer: d for d in decisions}
    assert set(by_ann) == {"admin@warden.test", f"dup-{state.project_id}@warden.test"}
    # Neither annotation is recorded as a correction of the other.
    assert all(d.supersedes_id is None for d in decisions)
    # The ledger result is what the rules say for two annotators who disagree: a vote with
    # no majority for weapons, flagged as a conflict, never the last one to submit winning.
    res = resolve_labels(decisions)
    assert res is not None
    assert res.labels == () and res.conflict is True and res.agreement == pytest.approx(0.5)

    # A re-pull changes nothing; deleting one annotation retracts only that one.
    again = pull(ls_settings, engine, client=ls_client, policy=policy)
    assert again.results[0]["recorded"] == 0 and again.results[0]["retracted"] == 0
    ls_client.delete_annotation(second_ann)
    pull(ls_settings, engine, client=ls_client, policy=policy)
    with unit_of_work(engine) as s:
        ratings = annotation_labels(s, project_id=state.project_id)
    assert ratings[item] == [{"weapons"}]
    assert first_ann != second_ann
