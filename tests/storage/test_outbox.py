"""Outbox: idempotent enqueue, due claims hidden from other senders, backoff, dead letters."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from storage.db import unit_of_work
from storage.models import OutboxMessage, utcnow
from storage.outbox import backlog, claim_due, enqueue, mark_done, mark_failed, retry_delay_s


def test_enqueue_is_idempotent_on_key(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        a = enqueue(s, "ls.push", "push:1", {"item_id": 1})
        b = enqueue(s, "ls.push", "push:1", {"item_id": 999})
        c = enqueue(s, "ls.push", "push:2", {"item_id": 2})
    assert a == b != c
    with unit_of_work(engine) as s:
        assert enqueue(s, "ls.push", "push:1", {}) == a
        assert backlog(s) == {"pending": 2, "done": 0, "dead": 0}
        assert s.get(OutboxMessage, a).payload == {"item_id": 1}


def test_claim_due_hides_claimed_and_done_is_final(engine: Engine) -> None:
    t0 = utcnow() + timedelta(seconds=1)
    with unit_of_work(engine) as s:
        ids = [enqueue(s, "ls.push", f"k{i}", {"i": i}) for i in range(3)]
        enqueue(s, "ls.pull", "other", {})
    with unit_of_work(engine) as s:
        first = claim_due(s, "ls.push", limit=2, now=t0)
    with unit_of_work(engine) as s:
        second = claim_due(s, "ls.push", limit=10, now=t0)
    assert [m.id for m in first] == ids[:2] and [m.id for m in second] == ids[2:]
    assert first[0].payload == {"i": 0} and first[0].attempts == 0
    with unit_of_work(engine) as s:
        mark_done(s, ids[0], {"task_id": 7})
    # A sender that died holding ids[1] and ids[2]: they come back once the lease passes.
    with unit_of_work(engine) as s:
        assert claim_due(s, "ls.push", now=t0 + timedelta(seconds=30)) == []
        again = claim_due(s, "ls.push", now=t0 + timedelta(seconds=61))
        assert [m.id for m in again] == ids[1:]
        assert backlog(s, "ls.push") == {"pending": 2, "done": 1, "dead": 0}
        assert s.get(OutboxMessage, ids[0]).result == {"task_id": 7}


def test_failures_back_off_exponentially_then_die(engine: Engine) -> None:
    t0 = utcnow() + timedelta(seconds=1)
    with unit_of_work(engine) as s:
        mid = enqueue(s, "ls.push", "k", {})
    now = t0
    delays = []
    for _ in range(3):
        with unit_of_work(engine) as s:
            (m,) = claim_due(s, "ls.push", now=now)
            mark_failed(s, m.id, "connection refused", now=now, base_delay_s=2, max_attempts=4)
        with unit_of_work(engine) as s:
            msg = s.get(OutboxMessage, mid)
            delays.append((msg.next_attempt_at - now).total_seconds())
            # Not due before its delay has passed.
            assert claim_due(s, "ls.push", now=msg.next_attempt_at - timedelta(seconds=0.5)) == []
            now = msg.next_attempt_at
    assert delays == [2.0, 4.0, 8.0]
    with unit_of_work(engine) as s:
        (m,) = claim_due(s, "ls.push", now=now)
        assert m.attempts == 3
        mark_failed(s, m.id, "still down", now=now, max_attempts=4)
    with unit_of_work(engine) as s:
        assert backlog(s) == {"pending": 0, "done": 0, "dead": 1}
        assert s.get(OutboxMessage, mid).last_error == "still down"
        assert claim_due(s, "ls.push", now=now + timedelta(days=1)) == []
    assert retry_delay_s(20, base_delay_s=2, max_delay_s=300) == 300
