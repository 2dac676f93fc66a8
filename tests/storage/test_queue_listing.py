"""The Queue tab's working list (filter, sort, page in SQL) and opening one chosen row under a
lease (`claim_item`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from storage import review
from storage.audit import list_audit
from storage.db import unit_of_work
from storage.errors import Conflict, NotFound, WardenError
from storage.items import MAX_QUEUE_PAGE, QueueQuery, list_queue_page, queue_item_ids
from storage.models import Claim, Item, utcnow
from storage.policy import load_policy
from storage.queue import claim_for_scoring, claim_item, claim_next, escalate, record_prediction
from storage.settings import DEFAULT_POLICY
from tests.storage._core_factories import make_item, verdict


def _ids(engine: Engine, query: QueueQuery | None = None, **kw) -> list[int]:
    with unit_of_work(engine) as s:
        return [v.item_id for v in list_queue_page(s, query, **kw).items]


def _seed(engine: Engine) -> dict[str, int]:
    now = utcnow()
    with unit_of_work(engine) as s:
        ids = {
            "old_drugs": make_item(
                s, priority=10, source="forum", created_at=now - timedelta(hours=30)
            ),
            "new_weapons": make_item(s, status="scored", priority=50, source="chat"),
            "queued": make_item(
                s, status="queued", priority=5, source="chat", created_at=now - timedelta(hours=2)
            ),
            "escalated": make_item(s, status="scored", priority=1, source="forum"),
        }
        record_prediction(s, ids["old_drugs"], verdict({"drugs": 0.9}))
        record_prediction(s, ids["new_weapons"], verdict({"weapons": 0.8}))
        claim_item(s, ids["escalated"], "carol")
        escalate(s, ids["escalated"], "carol")
    return ids


def test_filters_combine_and_sort_in_sql(engine: Engine) -> None:
    ids = _seed(engine)
    now = utcnow()
    # Default order: priority, highest first.
    assert _ids(engine) == [ids[k] for k in ("new_weapons", "old_drugs", "queued", "escalated")]
    assert _ids(engine, sort="priority", descending=False)[0] == ids["escalated"]
    assert _ids(engine, sort="created", descending=False)[0] == ids["old_drugs"]
    assert _ids(engine, QueueQuery(statuses=("escalated",))) == [ids["escalated"]]
    assert _ids(engine, QueueQuery(categories=("drugs",))) == [ids["old_drugs"]]
    assert set(_ids(engine, QueueQuery(source="chat"))) == {ids["new_weapons"], ids["queued"]}
    older = QueueQuery(created_before=now - timedelta(hours=24))
    assert _ids(engine, older) == [ids["old_drugs"]]
    assert _ids(engine, QueueQuery(min_priority=10)) == [ids["new_weapons"], ids["old_drugs"]]
    both = QueueQuery(source="chat", min_priority=10)
    assert _ids(engine, both) == [ids["new_weapons"]]


def test_held_filters_see_only_live_leases(engine: Engine) -> None:
    ids = _seed(engine)
    with unit_of_work(engine) as s:
        claim_item(s, ids["queued"], "alice")
        claim_item(s, ids["old_drugs"], "bob", lease_s=-5)  # already expired
    mine = QueueQuery(held="me", held_by_me="alice")
    assert _ids(engine, mine) == [ids["queued"]]
    assert _ids(engine, QueueQuery(held="someone")) == [ids["queued"]]
    assert ids["old_drugs"] in _ids(engine, QueueQuery(held="nobody"))
    assert ids["queued"] not in _ids(engine, QueueQuery(held="nobody"))
    assert _ids(engine, QueueQuery(held="me", held_by_me="bob")) == []
    assert _ids(engine, sort="held_by", descending=False)[:2] == [ids["queued"], ids["old_drugs"]]


def test_pages_are_bounded_and_do_not_overlap(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        made = [make_item(s, status="scored", priority=i % 3) for i in range(7)]
    seen: list[int] = []
    offset = 0
    while True:
        with unit_of_work(engine) as s:
            page = list_queue_page(s, sort="priority", limit=3, offset=offset)
        seen += [v.item_id for v in page.items]
        if not page.has_more:
            break
        offset += 3
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)) == 7
    with unit_of_work(engine) as s:
        assert queue_item_ids(s, sort="priority", limit=100) == seen
        for bad in (
            dict(limit=MAX_QUEUE_PAGE + 1),
            dict(limit=0),
            dict(offset=-1),
            dict(sort="filename; drop table items"),
        ):
            with pytest.raises(WardenError):
                list_queue_page(s, **bad)
        with pytest.raises(WardenError, match="unknown status"):
            list_queue_page(s, QueueQuery(statuses=("nope",)))


def test_claim_item_takes_the_chosen_row_under_a_lease(engine: Engine) -> None:
    ids = _seed(engine)
    with unit_of_work(engine) as s:
        got = claim_item(s, ids["queued"], "alice", lease_s=300)
        assert got.item_id == ids["queued"] and got.holder == "alice"
    with unit_of_work(engine) as s:
        item = s.get(Item, ids["queued"])
        assert item.status == "in_review" and item.lease_holder == "alice"
        claims = s.scalars(select(Claim).where(Claim.item_id == ids["queued"])).all()
        assert [(c.holder, c.kind, c.ended_at) for c in claims] == [("alice", "review", None)]
        events = list_audit(s, item_id=ids["queued"], action="item.claimed")
        assert events[0].actor == "alice" and events[0].details["via"] == "queue"
        # The reviewer's lease rules accept it: the item is held under a live lease.
        review.require_held(s, "alice", ids["queued"])
    # Opening it again keeps it (renewed); claim_next does not hand it to anyone else.
    with unit_of_work(engine) as s:
        assert claim_item(s, ids["queued"], "alice").item_id == ids["queued"]
        while (other := claim_next(s, "bob")) is not None:
            assert other.item_id != ids["queued"]


def test_claim_item_refuses_held_decided_escalated_scoring_and_missing(engine: Engine) -> None:
    ids = _seed(engine)
    policy = load_policy(DEFAULT_POLICY)
    with unit_of_work(engine) as s:
        claim_item(s, ids["queued"], "alice")
        claim_item(s, ids["new_weapons"], "alice")
        review.submit(s, "alice", ids["new_weapons"], ["weapons"], note=None, policy=policy)
    with unit_of_work(engine) as s:
        free = make_item(s, status="queued", priority=-100)
        assert [c.item_id for c in claim_for_scoring(s, "worker-1", limit=50)] == [free]
    cases = [
        (ids["queued"], "being reviewed by alice"),
        (ids["new_weapons"], "already decided"),
        (ids["escalated"], "already escalated"),
        (free, "being scored"),
    ]
    for item_id, message in cases:
        with pytest.raises(Conflict, match=message), unit_of_work(engine) as s:
            claim_item(s, item_id, "bob")
    with pytest.raises(NotFound), unit_of_work(engine) as s:
        claim_item(s, 10**9, "bob")


def test_claim_item_takes_over_an_expired_lease(engine: Engine) -> None:
    ids = _seed(engine)
    with unit_of_work(engine) as s:
        claim_item(s, ids["queued"], "alice", lease_s=-1)
    with unit_of_work(engine) as s:
        assert claim_item(s, ids["queued"], "bob").holder == "bob"
    with unit_of_work(engine) as s:
        claims = s.scalars(
            select(Claim).where(Claim.item_id == ids["queued"]).order_by(Claim.id)
        ).all()
        assert [(c.holder, c.outcome) for c in claims] == [("alice", "expired"), ("bob", None)]
