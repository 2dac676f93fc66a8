"""`model.worker.score_items`: score chosen items (an upload's new ones) ahead of the queue,
with a real tiny InternVL, real ingest, SQLite and PostgreSQL.

Run: .venv/bin/pytest tests/model/test_worker_items.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from model.loading import load_backend
from model.worker import score_items
from storage.db import make_engine, unit_of_work
from storage.models import Claim, Item
from storage.policy import load_policy
from storage.queue import claim_for_scoring
from storage.settings import Settings
from tests.model._worker_support import ingest, predictions_by_item, scoring_settings


@pytest.fixture(scope="module")
def items_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny random InternVL for this module (built offline, ~5 s)."""
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("items-tiny") / "internvl", "internvl", seed=0)


def test_only_the_given_items_are_scored(
    settings: Settings, items_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, items_tiny_model)
    # Five queued items; the oldest (first in queue order) is not asked for, and another
    # worker holds a live scoring lease on one that is.
    ids = ingest(settings, tmp_path / "in", 5)
    oldest, wanted, held = ids[0], ids[1:4], ids[4]
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            [other] = claim_for_scoring(s, "other-worker", limit=5, item_ids=[held])
        assert other.item_id == held
        policy = load_policy(settings.policy_path)
        backend = load_backend(settings.model)
        calls: list[tuple[int, int]] = []

        report = score_items(
            settings,
            backend,
            [*wanted, held, wanted[0]],  # a repeated id is scored once
            policy=policy,
            progress=lambda done, total: calls.append((done, total)),
            batch_size=2,
        )

        assert (report.scored, report.failed, report.batches) == (3, 0, 2)
        assert report.model_version == backend.model_version
        assert calls == [(0, 4), (2, 4), (3, 4)]
        preds = predictions_by_item(settings)
        assert sorted(preds) == sorted(wanted)
        assert all(len(p) == 1 and set(p[0].scores) == set(policy.ids) for p in preds.values())
        with unit_of_work(engine) as s:
            status = dict(s.execute(select(Item.id, Item.status).where(Item.id.in_(ids))).all())
            held_by = s.scalar(select(Item.lease_holder).where(Item.id == held))
            wanted_leases = s.scalars(select(Item.lease_holder).where(Item.id.in_(wanted))).all()
            claim_outcomes = set(
                s.scalars(select(Claim.outcome).where(Claim.item_id.in_(wanted))).all()
            )
        assert status[oldest] == "queued" and status[held] == "queued"
        assert {status[i] for i in wanted} == {"scored"}
        assert held_by == "other-worker"  # the other worker's lease is untouched
        assert set(wanted_leases) == {None}
        assert claim_outcomes == {"scored"}

        # Asking again for items already scored does nothing: no second prediction.
        again = score_items(settings, backend, wanted, policy=policy)
        assert (again.scored, again.failed, again.batches) == (0, 0, 0)
        assert sum(len(p) for p in predictions_by_item(settings).values()) == 3
    finally:
        engine.dispose()
