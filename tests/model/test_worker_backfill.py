"""The scoring worker's backfill: items imported with ground truth (decided, escalated) get a
prediction once the queue is empty, with a real tiny InternVL, real manifest ingest, SQLite
and PostgreSQL. Status, decision, priority and other holders' leases stay as they were.

Run: .venv/bin/pytest tests/model/test_worker_backfill.py -q
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from model.backends import Backend, ScoringInput
from model.loading import load_backend
from model.worker import run_worker
from storage.audit import list_audit
from storage.db import make_engine, unit_of_work
from storage.domain import Verdict
from storage.ingest import ingest_paths
from storage.models import Claim, Decision, Item, utcnow
from storage.policy import Policy
from storage.queue import QueueFilters, claim_next, latest_decision_id, record_prediction
from storage.settings import Settings
from tests.model._worker_support import predictions_by_item, scoring_settings, write_images

WARDEN = str(Path(sys.executable).with_name("warden"))

LABELS = ("weapons", "safe", "child_safety", "scam_fraud")


@pytest.fixture(scope="module")
def backfill_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny random InternVL for this module (built offline, ~5 s)."""
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("backfill-tiny") / "internvl", "internvl", seed=0)


def ingest_world(
    settings: Settings, folder: Path, n_imported: int, n_queued: int
) -> tuple[list[int], list[int]]:
    """`n_imported` images imported with ground truth through a CSV manifest (the oldest
    items), then `n_queued` plain ones; (imported ids, queued ids)."""
    paths = write_images(folder, n_imported + n_queued)
    rows = [f"{p.name},{LABELS[i % len(LABELS)]}" for i, p in enumerate(paths[:n_imported])]
    manifest = folder / "truth.csv"
    manifest.write_text("path,labels\n" + "\n".join(rows) + "\n")
    engine = make_engine(settings.database_url, settings.db)
    try:
        imported = ingest_paths(engine, settings, [manifest], source="partner")
        queued = ingest_paths(engine, settings, paths[n_imported:]) if n_queued else None
    finally:
        engine.dispose()
    imported_ids = [r.item_id for r in imported.results if r.status == "accepted"]
    assert len(imported_ids) == n_imported, imported.summary
    queued_ids = [r.item_id for r in queued.results if r.status == "accepted"] if queued else []
    assert len(queued_ids) == n_queued
    return imported_ids, queued_ids


def snapshot(engine: Engine, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """(status, priority, current decision id, lease holder) per item."""
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(Item.id, Item.status, Item.priority, Item.lease_holder).where(Item.id.in_(ids))
        ).all()
        decisions = dict(
            s.execute(
                select(Decision.item_id, Decision.id).where(
                    Decision.item_id.in_(ids), Decision.id == latest_decision_id(Decision.item_id)
                )
            ).all()
        )
    return {r.id: (r.status, r.priority, decisions.get(r.id), r.lease_holder) for r in rows}


def score_claim_order(engine: Engine) -> list[int]:
    with unit_of_work(engine) as s:
        return list(
            s.scalars(select(Claim.item_id).where(Claim.kind == "score").order_by(Claim.id))
        )


def test_imported_ground_truth_is_scored_after_the_queue(
    settings: Settings, backfill_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, backfill_tiny_model)
    imported, plain = ingest_world(settings, tmp_path / "in", 4, 3)
    free, held = imported[:3], imported[3]
    queued, reviewing = plain[:2], plain[2]
    backend = load_backend(settings.model)
    engine = make_engine(settings.database_url, settings.db)
    t0 = utcnow()
    with unit_of_work(engine) as s:
        # A priority the backfill must not touch; a live lease it must not take.
        s.execute(update(Item).where(Item.id == free[0]).values(priority=5))
        s.execute(
            update(Item)
            .where(Item.id == held)
            .values(lease_holder="alice", lease_expires_at=t0 + timedelta(hours=1))
        )
        # An item scored by an older model that a moderator is reviewing right now.
        old = Verdict({"weapons": 0.1}, [], "old-model", "old-policy", 1.0)
        record_prediction(s, reviewing, old)
    with unit_of_work(engine) as s:
        got = claim_next(s, "bob", QueueFilters(include_unscored=False), lease_s=3600)
        assert got is not None and got.item_id == reviewing
    before = snapshot(engine, [*imported, reviewing])
    assert {before[i][0] for i in imported} == {"decided", "escalated"}
    assert before[reviewing][0] == "in_review" and before[reviewing][3] == "bob"

    report = run_worker(settings, backend, limit=None, batch_size=2, progress=False)

    assert (report.scored, report.backfilled, report.failed) == (5, 3, 0)
    preds = predictions_by_item(settings)
    assert sorted(preds) == sorted([*queued, *free, reviewing])
    assert all(len(preds[i]) == 1 for i in [*queued, *free])
    assert [p.model_version for p in preds[reviewing]] == ["old-model"]
    p = preds[free[0]][0]
    assert p.model_version == backend.model_version and len(p.scores) == 11
    assert 0.0 <= p.signals["nsfw"] <= 1.0  # the cheap signals ran for backfilled items too
    # Status, decision, priority and the other holders' leases are as they were.
    assert snapshot(engine, [*imported, reviewing]) == before
    # The queue first, although the imported items are older.
    order = score_claim_order(engine)
    assert sorted(order[:2]) == sorted(queued) and sorted(order[2:]) == sorted(free)
    with unit_of_work(engine) as s:
        outcomes = set(s.scalars(select(Claim.outcome).where(Claim.item_id.in_(free))).all())
        backfill_flags = [
            e.details.get("backfill")
            for e in list_audit(s, action="item.claimed_for_scoring", limit=50)
        ]
    assert outcomes == {"scored"}
    assert sorted(backfill_flags, key=bool) == [None, None, True, True, True]

    # Nothing new to score: a second run does nothing.
    again = run_worker(settings, backend, limit=None, batch_size=2, progress=False)
    assert (again.scored, again.failed, again.batches) == (0, 0, 0)
    assert sum(len(v) for v in predictions_by_item(settings).values()) == 6

    # Once alice's lease has run out, the item she held is backfilled too, still decided.
    with unit_of_work(engine) as s:
        s.execute(update(Item).where(Item.id == held).values(lease_expires_at=t0))
    late = run_worker(settings, backend, limit=None, batch_size=2, progress=False)
    assert (late.scored, late.backfilled) == (1, 1)
    assert held in predictions_by_item(settings)
    after = snapshot(engine, [held])[held]
    assert after == (*before[held][:3], None)
    engine.dispose()


class _ArrivalBackend:
    """The real backend, plus a new upload arriving while the first batch is scored."""

    def __init__(self, inner: Backend, arrive: Any) -> None:
        self.inner = inner
        self.arrive = arrive

    @property
    def model_version(self) -> str:
        return self.inner.model_version

    def score(
        self, items: Sequence[ScoringInput], policy: Policy, *, rationale: bool = False
    ) -> list[Verdict]:
        if self.arrive is not None:
            self.arrive()
            self.arrive = None
        return self.inner.score(items, policy, rationale=rationale)


def test_queued_items_arriving_during_backfill_come_first(
    settings: Settings, backfill_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, backfill_tiny_model)
    imported, _ = ingest_world(settings, tmp_path / "in", 3, 0)
    newcomer = write_images(tmp_path / "late", 4)[3]  # distinct from the imported three
    arrived: list[int] = []

    def arrive() -> None:
        engine = make_engine(settings.database_url, settings.db)
        try:
            report = ingest_paths(engine, settings, [newcomer])
        finally:
            engine.dispose()
        arrived.extend(r.item_id for r in report.results if r.status == "accepted")

    backend = _ArrivalBackend(load_backend(settings.model), arrive)
    report = run_worker(settings, backend, limit=None, batch_size=1, progress=False)

    assert (report.scored, report.backfilled) == (4, 3)
    engine = make_engine(settings.database_url, settings.db)
    assert score_claim_order(engine) == [imported[0], arrived[0], imported[1], imported[2]]
    with unit_of_work(engine) as s:
        assert s.scalar(select(Item.status).where(Item.id == arrived[0])) == "scored"
    engine.dispose()


def test_no_backfill_leaves_decided_items_unscored(
    settings: Settings, backfill_tiny_model: Path, tmp_path: Path
) -> None:
    from tests.model.test_worker import worker_env

    settings = scoring_settings(settings, backfill_tiny_model)
    imported, queued = ingest_world(settings, tmp_path / "in", 2, 1)
    proc = subprocess.run(
        [WARDEN, "score", "--no-backfill", "--no-progress", "--batch-size", "4"],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"scored 1 item\(s\) \(0 by backfill\)", proc.stdout), proc.stdout
    assert sorted(predictions_by_item(settings)) == queued

    backend = load_backend(settings.model)
    off = run_worker(settings, backend, limit=None, batch_size=4, progress=False, backfill=False)
    assert off.scored == 0
    assert sorted(predictions_by_item(settings)) == queued
    on = run_worker(settings, backend, limit=None, batch_size=4, progress=False)
    assert (on.scored, on.backfilled) == (2, 2)
    assert sorted(predictions_by_item(settings)) == sorted([*queued, *imported])


def test_backfill_failure_is_retried_next_run_then_given_up(
    settings: Settings, backfill_tiny_model: Path, tmp_path: Path
) -> None:
    from storage.blobs import BlobStore

    settings = scoring_settings(settings, backfill_tiny_model)
    imported, _ = ingest_world(settings, tmp_path / "in", 2, 0)
    bad, good = imported
    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as s:
        view_sha = s.scalar(select(Item.view_sha256).where(Item.id == bad))
    BlobStore(settings.blobs_path).path(view_sha).write_bytes(b"not an image at all")
    before = snapshot(engine, imported)
    backend = load_backend(settings.model)

    def run() -> Any:
        return run_worker(
            settings, backend, limit=None, batch_size=2, progress=False, max_attempts=2
        )

    first = run()  # one attempt per run: the failed item is not retried in a loop
    assert (first.scored, first.failed, first.given_up) == (1, 1, 0)
    second = run()
    assert (second.scored, second.failed, second.given_up) == (0, 1, 1)
    third = run()  # given up: not claimed again
    assert (third.scored, third.failed, third.batches) == (0, 0, 0)
    assert sorted(predictions_by_item(settings)) == [good]
    assert snapshot(engine, imported) == before  # still decided, same priority and decision
    with unit_of_work(engine) as s:
        item = s.get(Item, bad)
        assert item is not None and item.meta["score_attempts"] == 2
        given_up = list_audit(s, action="score_given_up", item_id=bad)
    assert len(given_up) == 1 and given_up[0].details["backfill"] is True
    engine.dispose()
