"""16 reviewer processes race over one queue: every item decided exactly once, no double claim.

Marked slow (about 10-60 s per backend on 2 cores).
"""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter, defaultdict

import pytest
from sqlalchemy import Engine, func, select

from storage.db import unit_of_work
from storage.models import AuditEvent, Claim, Decision, Item
from tests.storage._core_factories import bulk_items
from tests.storage._core_workers import review_until_empty, score_until_empty

N_ITEMS = 2000
N_WORKERS = 16


def assert_no_overlapping_leases(engine: Engine) -> None:
    """In the claims history, no item ever had two live leases at once."""
    with unit_of_work(engine) as s:
        claims = s.execute(
            select(Claim.item_id, Claim.claimed_at, Claim.expires_at, Claim.ended_at).order_by(
                Claim.item_id, Claim.claimed_at, Claim.id
            )
        ).all()
    by_item: dict[int, list] = defaultdict(list)
    for c in claims:
        by_item[c.item_id].append(c)
    for item_id, rows in by_item.items():
        for prev, nxt in zip(rows, rows[1:], strict=False):
            live_until = min(prev.expires_at, prev.ended_at or prev.expires_at)
            assert nxt.claimed_at >= live_until, f"item {item_id}: overlapping leases"


@pytest.mark.slow
def test_parallel_reviewers_decide_each_item_exactly_once(db_url: str, engine: Engine) -> None:
    ids = bulk_items(engine, N_ITEMS, status="scored")
    ctx = mp.get_context("spawn")
    with ctx.Pool(N_WORKERS) as pool:
        results = pool.starmap(review_until_empty, [(db_url, f"r{i}") for i in range(N_WORKERS)])
    decided = [i for r in results for i in r]
    assert sorted(decided) == ids, "an item was decided twice or never"
    assert sum(1 for r in results if r) > 1, "only one worker got work: no real race"
    with unit_of_work(engine) as s:
        per_item = Counter(s.scalars(select(Decision.item_id)))
        assert len(per_item) == N_ITEMS and set(per_item.values()) == {1}
        statuses = dict(s.execute(select(Item.status, func.count()).group_by(Item.status)).all())
        assert statuses == {"decided": N_ITEMS}
        assert s.scalar(select(func.count()).select_from(Claim)) == N_ITEMS
        assert s.scalar(select(func.count()).where(Claim.outcome != "decided")) == 0
        audit = Counter(s.scalars(select(AuditEvent.action)))
        assert audit["item.claimed"] == N_ITEMS and audit["decision.recorded"] == N_ITEMS
    assert_no_overlapping_leases(engine)


@pytest.mark.slow
def test_parallel_scoring_workers_never_share_an_item(db_url: str, engine: Engine) -> None:
    ids = bulk_items(engine, 400, status="queued")
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(score_until_empty, [(db_url, f"w{i}") for i in range(4)])
    scored = [i for r in results for i in r]
    assert sorted(scored) == ids
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).where(Item.status != "scored")) == 0
        assert s.scalar(select(func.count()).where(Item.lease_holder.is_not(None))) == 0
    assert_no_overlapping_leases(engine)
