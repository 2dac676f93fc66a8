"""Worker processes for the storage-core concurrency and fault tests (importable under spawn)."""

from __future__ import annotations

import sys
import time

from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.queue import claim_for_scoring, claim_next, record_prediction
from tests.storage._core_factories import verdict


def review_until_empty(url: str, reviewer: str) -> list[int]:
    """Claim and decide items until the queue is empty; the ids this reviewer decided."""
    engine = make_engine(url)
    decided: list[int] = []
    try:
        while True:
            with unit_of_work(engine) as s:
                claimed = claim_next(s, reviewer, lease_s=600)
            if claimed is None:
                return decided
            with unit_of_work(engine) as s:
                record_decision(
                    s,
                    item_id=claimed.item_id,
                    categories=["weapons"] if claimed.item_id % 3 == 0 else [],
                    source="moderator",
                    reviewer=reviewer,
                    require_lease=True,
                )
            decided.append(claimed.item_id)
    finally:
        engine.dispose()


def score_until_empty(url: str, worker: str) -> list[int]:
    engine = make_engine(url)
    scored: list[int] = []
    try:
        while True:
            with unit_of_work(engine) as s:
                batch = claim_for_scoring(s, worker, limit=8)
            if not batch:
                return scored
            with unit_of_work(engine) as s:
                for c in batch:
                    record_prediction(s, c.item_id, verdict({"weapons": 0.6}), holder=worker)
            scored.extend(c.item_id for c in batch)
    finally:
        engine.dispose()


def hold_and_hang(url: str, kind: str, n: int, lease_s: int, in_transaction: bool) -> None:
    """Claim n items, print their ids, then hang until killed (kill -9 in the fault test).

    in_transaction=True hangs inside the open unit of work, before it commits.
    """
    engine = make_engine(url)
    with unit_of_work(engine) as s:
        if kind == "review":
            ids = [c.item_id for c in (claim_next(s, "doomed", lease_s=lease_s) for _ in range(n))]
        else:
            ids = [c.item_id for c in claim_for_scoring(s, "doomed", limit=n, lease_s=lease_s)]
        if in_transaction:
            print(" ".join(map(str, ids)), flush=True)
            time.sleep(3600)
    print(" ".join(map(str, ids)), flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    hold_and_hang(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1")
