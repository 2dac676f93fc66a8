"""Test factories for storage-core tests: items inserted directly (fake blob shas), verdicts.

Independent of ingestion on purpose: queue and decision tests should not need real images.
"""

from __future__ import annotations

import hashlib
import itertools
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from storage.db import unit_of_work
from storage.domain import Verdict
from storage.models import Blob, Item, Prediction, utcnow

_counter = itertools.count()
POLICY_VERSION = "test@000000000000"


def fake_sha(n: int | str) -> str:
    return hashlib.sha256(f"fake-{n}".encode()).hexdigest()


def make_item(
    session: Session,
    *,
    status: str = "scored",
    priority: int = 0,
    source: str = "test",
    phash: str | None = None,
    text: str | None = None,
    created_at: datetime | None = None,
) -> int:
    """One Blob + Item row via the ORM (plus an empty prediction unless queued); the item id."""
    sha = fake_sha(f"{next(_counter)}-{id(session)}-{utcnow().timestamp()}")
    session.add(Blob(sha256=sha, size_bytes=10, mime="image/png", width=8, height=8))
    item = Item(
        blob_sha256=sha,
        view_sha256=sha,
        source=source,
        status=status,
        priority=priority,
        phash=phash,
        text=text,
        filename=f"{sha[:8]}.png",
        created_at=created_at or utcnow(),
    )
    session.add(item)
    session.flush()
    if status != "queued":
        # A scored item always has a prediction; the queue relies on it when requeueing.
        session.add(
            Prediction(
                item_id=item.id,
                model_version="factory",
                policy_version=POLICY_VERSION,
                scores={},
                flagged=[],
                created_at=item.created_at,
            )
        )
        session.flush()
    return item.id


def bulk_items(engine: Engine, n: int, *, status: str = "scored", prefix: str = "b") -> list[int]:
    """n items with core multi-row inserts (fast); created_at increasing with the id."""
    t0 = utcnow() - timedelta(hours=1)
    blobs = [
        {
            "sha256": fake_sha(f"{prefix}{i}"),
            "size_bytes": 1,
            "mime": "image/png",
            "width": 1,
            "height": 1,
        }
        for i in range(n)
    ]
    items = [
        {
            "blob_sha256": b["sha256"],
            "status": status,
            "priority": 0,
            "source": "bulk",
            "animated": False,
            "meta": {},
            "created_at": t0 + timedelta(microseconds=i),
            "updated_at": t0,
        }
        for i, b in enumerate(blobs)
    ]
    with unit_of_work(engine) as s:
        s.execute(insert(Blob.__table__), blobs)
        s.execute(insert(Item.__table__), items)
    with unit_of_work(engine) as s:
        return list(
            s.scalars(
                Item.__table__.select()
                .with_only_columns(Item.__table__.c.id)
                .where(Item.__table__.c.source == "bulk")
                .order_by(Item.__table__.c.id)
            )
        )


def verdict(
    scores: dict[str, float],
    *,
    threshold: float = 0.5,
    model_version: str = "m1",
    policy_version: str = POLICY_VERSION,
) -> Verdict:
    return Verdict(
        scores=scores,
        flagged=[k for k, v in scores.items() if v >= threshold],
        model_version=model_version,
        policy_version=policy_version,
        latency_ms=1.0,
    )
