"""kill -9 of a reviewer or scoring worker holding claims: after the lease runs out its items
are claimable again and nothing is lost; killed inside an open transaction, nothing it did
persists and it leaves no lock behind. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from storage.db import unit_of_work
from storage.decisions import record_decision
from storage.models import Claim, Decision, Item
from storage.queue import claim_for_scoring, claim_next, record_prediction
from tests.storage._core_factories import make_item, verdict

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 2


def start_doomed(url: str, kind: str, n: int, *, in_transaction: bool) -> tuple:
    """A worker process that claims n items and hangs; returns (process, claimed ids)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.storage._core_workers",
            url,
            kind,
            str(n),
            str(LEASE_S),
            "1" if in_transaction else "0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.strip():
        proc.kill()
        raise AssertionError(f"worker failed: {proc.stderr.read()}")
    return proc, [int(x) for x in line.split()]


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_killed_reviewer_items_return_after_lease(engine: Engine, db_url: str) -> None:
    with unit_of_work(engine) as s:
        ids = [make_item(s) for _ in range(6)]
    proc, held = start_doomed(db_url, "review", 4, in_transaction=False)
    kill9(proc)
    t_kill = time.monotonic()
    assert len(held) == 4 and set(held) <= set(ids)
    # While the dead worker's leases are live, only the other items are handed out.
    with unit_of_work(engine) as s:
        first = [claim_next(s, "alice", lease_s=60) for _ in range(3)]
    if time.monotonic() - t_kill < LEASE_S:
        assert {c.item_id for c in first[:2]} == set(ids) - set(held)
        assert first[2] is None
    time.sleep(LEASE_S + 0.5)
    decided = {c.item_id for c in first if c is not None}
    with unit_of_work(engine) as s:
        for item_id in decided:
            record_decision(
                s,
                item_id=item_id,
                categories=[],
                source="moderator",
                reviewer="alice",
                require_lease=True,
            )
    while True:
        with unit_of_work(engine) as s:
            c = claim_next(s, "bob")
            if c is None:
                break
            record_decision(
                s,
                item_id=c.item_id,
                categories=["drugs"],
                source="moderator",
                reviewer="bob",
                require_lease=True,
            )
            decided.add(c.item_id)
    assert decided == set(ids)
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == 6
        assert s.scalar(select(func.count()).where(Item.status != "decided")) == 0
        outcomes = dict(
            s.execute(select(Claim.outcome, func.count()).group_by(Claim.outcome)).all()
        )
        assert outcomes == {"expired": 4, "decided": 6}
        # The dead reviewer can no longer decide what it held (another reviewer decided it).
        with pytest.raises(Exception, match="cannot decide item .* already decided"):
            record_decision(
                s,
                item_id=held[0],
                categories=[],
                source="moderator",
                reviewer="doomed",
                require_lease=True,
            )


@pytest.mark.slow
def test_killed_scoring_worker_items_are_rescored(engine: Engine, db_url: str) -> None:
    with unit_of_work(engine) as s:
        ids = [make_item(s, status="queued") for _ in range(5)]
    proc, held = start_doomed(db_url, "score", 5, in_transaction=False)
    kill9(proc)
    t_kill = time.monotonic()
    assert sorted(held) == ids
    with unit_of_work(engine) as s:
        early = claim_for_scoring(s, "w2", limit=10)
    if time.monotonic() - t_kill < LEASE_S:
        assert early == [], "a live scoring lease was handed to another worker"
    time.sleep(LEASE_S + 0.5)
    with unit_of_work(engine) as s:
        # (On a very slow machine the early claim may already have come after the expiry.)
        batch = early or claim_for_scoring(s, "w2", limit=10)
        assert sorted(c.item_id for c in batch) == ids
        for c in batch:
            record_prediction(s, c.item_id, verdict({"sexual": 0.1}), holder="w2")
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).where(Item.status != "scored")) == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["review", "score"])
def test_kill_inside_open_transaction_leaves_nothing(
    engine: Engine, db_url: str, kind: str
) -> None:
    status = "scored" if kind == "review" else "queued"
    with unit_of_work(engine) as s:
        ids = [make_item(s, status=status) for _ in range(3)]
    proc, held = start_doomed(db_url, kind, 3, in_transaction=True)
    assert sorted(held) == ids
    kill9(proc)
    # The uncommitted claims vanished with the process: no lease, no history, no lock
    # (this unit of work would wait on a leftover SQLite write lock, or skip locked PG rows).
    deadline = time.monotonic() + 20
    while True:
        with unit_of_work(engine) as s:
            if kind == "review":
                got = [claim_next(s, "alice") for _ in range(3)]
                got_ids = sorted(c.item_id for c in got if c is not None)
            else:
                got_ids = sorted(c.item_id for c in claim_for_scoring(s, "w2", limit=5))
        # PostgreSQL notices the dropped connection asynchronously; give it a moment.
        if got_ids == ids or time.monotonic() > deadline:
            break
        with unit_of_work(engine) as s:
            s.execute(
                Item.__table__.update().values(
                    lease_holder=None, lease_expires_at=None, status=status
                )
            )
            s.execute(Claim.__table__.delete())
        time.sleep(0.5)
    assert got_ids == ids
    with unit_of_work(engine) as s:
        holders = set(s.scalars(select(Claim.holder)))
        assert "doomed" not in holders
