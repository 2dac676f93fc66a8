"""Queue: claims, leases, releases, escalation, scoring claims and predictions, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from storage.audit import list_audit
from storage.db import unit_of_work
from storage.decisions import current_decision, record_decision
from storage.errors import Conflict, NotFound
from storage.models import Claim, Item, utcnow
from storage.queue import (
    QueueFilters,
    claim_for_backfill,
    claim_for_scoring,
    claim_next,
    escalate,
    expire_leases,
    held_items,
    record_prediction,
    release,
    renew_lease,
)
from tests.storage._core_factories import POLICY_VERSION, make_item, verdict


def _status(engine: Engine, item_id: int) -> str:
    with unit_of_work(engine) as s:
        return s.scalar(select(Item.status).where(Item.id == item_id))


def test_claim_order_priority_then_oldest_and_no_double_claim(engine: Engine) -> None:
    t0 = utcnow() - timedelta(minutes=5)
    with unit_of_work(engine) as s:
        old = make_item(s, created_at=t0)
        new = make_item(s, created_at=t0 + timedelta(seconds=1))
        urgent = make_item(s, priority=5, created_at=t0 + timedelta(seconds=2))
    got = []
    for reviewer in ("alice", "bob", "carol", "dave"):
        with unit_of_work(engine) as s:
            c = claim_next(s, reviewer)
            got.append(c.item_id if c else None)
    assert got == [urgent, old, new, None]
    with unit_of_work(engine) as s:
        held = held_items(s, "bob")
        assert [h.item_id for h in held] == [old]
        assert held[0].status == "in_review"
        claims = s.scalars(select(Claim).order_by(Claim.id)).all()
        assert [(c.item_id, c.holder, c.kind) for c in claims] == [
            (urgent, "alice", "review"),
            (old, "bob", "review"),
            (new, "carol", "review"),
        ]
        assert all(c.ended_at is None for c in claims)
        assert len(list_audit(s, action="item.claimed")) == 3
    assert _status(engine, old) == "in_review"


def test_expired_lease_returns_item_to_queue(engine: Engine) -> None:
    t0 = utcnow()
    with unit_of_work(engine) as s:
        item = make_item(s)
    with unit_of_work(engine) as s:
        assert claim_next(s, "crashed", lease_s=10, now=t0).item_id == item
    with unit_of_work(engine) as s:
        assert claim_next(s, "bob", now=t0 + timedelta(seconds=5)) is None
    with unit_of_work(engine) as s:
        c = claim_next(s, "bob", now=t0 + timedelta(seconds=11))
        assert c is not None and c.item_id == item and c.holder == "bob"
    with unit_of_work(engine) as s:
        claims = s.scalars(select(Claim).where(Claim.item_id == item).order_by(Claim.id)).all()
        assert [(c.holder, c.outcome) for c in claims] == [("crashed", "expired"), ("bob", None)]
        assert held_items(s, "crashed", now=t0 + timedelta(seconds=11)) == []


def test_expire_leases_sweeps_back_to_previous_status(engine: Engine) -> None:
    t0 = utcnow()
    with unit_of_work(engine) as s:
        scored = make_item(s, status="scored")
        queued = make_item(s, status="queued")
    with unit_of_work(engine) as s:
        claim_next(s, "r1", lease_s=5, now=t0)
        claim_next(s, "r2", lease_s=5, now=t0)
    with unit_of_work(engine) as s:
        assert expire_leases(s, now=t0 + timedelta(seconds=1)) == 0
    with unit_of_work(engine) as s:
        assert expire_leases(s, now=t0 + timedelta(seconds=6)) == 2
    assert _status(engine, scored) == "scored"
    assert _status(engine, queued) == "queued"
    with unit_of_work(engine) as s:
        assert len(list_audit(s, action="lease.expired")) == 2
        assert s.scalar(select(Claim).where(Claim.ended_at.is_(None))) is None


def test_skip_keeps_item_from_same_reviewer_only(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        a = make_item(s, priority=1)
        b = make_item(s)
    with unit_of_work(engine) as s:
        assert claim_next(s, "alice").item_id == a
    with unit_of_work(engine) as s:
        with pytest.raises(Conflict):
            release(s, a, "mallory")
    with unit_of_work(engine) as s:
        release(s, a, "alice", reason="skip")
    assert _status(engine, a) == "scored"
    with unit_of_work(engine) as s:
        assert claim_next(s, "alice").item_id == b
        assert claim_next(s, "bob").item_id == a
        events = list_audit(s, action="item.released")
        assert events[0].details["reason"] == "skip"


def test_release_without_skip_makes_item_claimable_again(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        a = make_item(s)
    with unit_of_work(engine) as s:
        claim_next(s, "alice")
        release(s, a, "alice", reason="logout")
    with unit_of_work(engine) as s:
        assert claim_next(s, "alice").item_id == a


def test_filters_categories_scores_source_and_unscored(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        weapons = make_item(s, status="queued", source="forum")
        drugs = make_item(s, status="queued", source="chat")
        unscored = make_item(s, status="queued", source="chat")
        record_prediction(s, weapons, verdict({"weapons": 0.9, "drugs": 0.1}))
        record_prediction(s, drugs, verdict({"weapons": 0.2, "drugs": 0.6}))

    def pick(f: QueueFilters) -> int | None:
        with unit_of_work(engine) as s:
            c = claim_next(s, "probe", f)
            if c is None:
                return None
            release(s, c.item_id, "probe", reason="probe")
            return c.item_id

    assert pick(QueueFilters(categories=("drugs",))) == drugs
    assert pick(QueueFilters(categories=["drugs"])) == drugs  # type: ignore[arg-type]
    assert pick(QueueFilters(categories=("sexual",))) is None
    assert pick(QueueFilters(min_score=0.8)) == weapons
    assert pick(QueueFilters(max_score=0.7)) == drugs
    assert pick(QueueFilters(min_score=0.61, max_score=0.89)) is None
    assert pick(QueueFilters(source="chat", include_unscored=False)) == drugs
    assert pick(QueueFilters(source="chat", categories=("weapons",))) is None
    with unit_of_work(engine) as s:
        claim_next(s, "x", QueueFilters(include_unscored=False))
        claim_next(s, "y", QueueFilters(include_unscored=False))
        assert claim_next(s, "z", QueueFilters(include_unscored=False)) is None
        assert claim_next(s, "z").item_id == unscored


def test_scoring_claims_are_disjoint_and_prediction_is_idempotent(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        ids = [make_item(s, status="queued") for _ in range(5)]
        make_item(s, status="scored")
    with unit_of_work(engine) as s:
        w1 = claim_for_scoring(s, "w1", limit=3)
    with unit_of_work(engine) as s:
        w2 = claim_for_scoring(s, "w2", limit=3)
    got1, got2 = {c.item_id for c in w1}, {c.item_id for c in w2}
    assert len(got1) == 3 and len(got2) == 2 and not got1 & got2
    assert got1 | got2 == set(ids)
    # Reviewers do not take items a scoring worker holds.
    with unit_of_work(engine) as s:
        c = claim_next(s, "alice")
        assert c is not None and c.item_id not in got1 | got2
    target = sorted(got1)[0]
    with unit_of_work(engine) as s:
        p1 = record_prediction(s, target, verdict({"weapons": 0.7}), holder="w1")
    with unit_of_work(engine) as s:
        assert record_prediction(s, target, verdict({"weapons": 0.7}), holder="w1") == p1
        item = s.get(Item, target)
        assert item.status == "scored" and item.lease_holder is None
        claim = s.scalar(select(Claim).where(Claim.item_id == target))
        assert claim.outcome == "scored" and claim.ended_at is not None
        assert len(list_audit(s, action="item.scored", item_id=target)) == 1
        p2 = record_prediction(s, target, verdict({"weapons": 0.1}, model_version="m2"))
        assert p2 != p1


def test_renew_and_escalate(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        a = make_item(s)
    with unit_of_work(engine) as s:
        c = claim_next(s, "alice", lease_s=30)
    with unit_of_work(engine) as s:
        with pytest.raises(Conflict):
            renew_lease(s, a, "bob")
        new_expiry = renew_lease(s, a, "alice", lease_s=3600)
    assert new_expiry > c.lease_expires_at + timedelta(minutes=50)
    with unit_of_work(engine) as s:
        assert s.scalar(select(Claim.expires_at).where(Claim.item_id == a)) == new_expiry
        escalate(s, a, "alice", note="needs legal")
    with unit_of_work(engine) as s:
        item = s.get(Item, a)
        assert item.status == "escalated" and item.lease_holder is None
        assert s.scalar(select(Claim.outcome).where(Claim.item_id == a)) == "escalated"
        assert list_audit(s, action="item.escalated")[0].details["note"] == "needs legal"
        assert claim_next(s, "bob") is None
        with pytest.raises(NotFound):
            escalate(s, 999_999, "alice")


def test_first_score_puts_likely_violations_first(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        calm, flagged, nsfw = (make_item(s, status="queued") for _ in range(3))
    with unit_of_work(engine) as s:
        record_prediction(s, calm, verdict({"weapons": 0.1}))
        record_prediction(s, flagged, verdict({"weapons": 0.9}))
        nsfw_verdict = verdict({"weapons": 0.1})
        nsfw_verdict.signals["nsfw"] = 0.8
        record_prediction(s, nsfw, nsfw_verdict)
    with unit_of_work(engine) as s:
        order = [claim_next(s, f"r{i}").item_id for i in range(3)]
    assert order == [flagged, nsfw, calm]
    # A second model's score does not raise the priority again.
    with unit_of_work(engine) as s:
        before = s.get(Item, flagged).priority
        record_prediction(s, flagged, verdict({"weapons": 0.9}, model_version="m2"))
        assert s.get(Item, flagged).priority == before


def _imported(session, *, priority: int = 0, categories: tuple[str, ...] = ()) -> int:
    """A queued item given ground truth by an import: decided, with no prediction at all."""
    item = make_item(session, status="queued", priority=priority)
    record_decision(session, item_id=item, categories=list(categories), source="import")
    return item


def _backfill(engine: Engine, worker: str, **kw) -> list[int]:
    kw.setdefault("model_version", "m1")
    kw.setdefault("policy_version", POLICY_VERSION)
    kw.setdefault("limit", 10)
    with unit_of_work(engine) as s:
        return [c.item_id for c in claim_for_backfill(s, worker, **kw)]


def test_backfill_claims_items_outside_the_queue_without_a_prediction(engine: Engine) -> None:
    t0 = utcnow()
    with unit_of_work(engine) as s:
        queued = make_item(s, status="queued")
        decided = _imported(s, priority=7)
        escalated = _imported(s)
        s.execute(update(Item).where(Item.id == escalated).values(status="escalated"))
        old_model = make_item(s, status="scored")  # a prediction by "factory", not by m1
        done = _imported(s)
        record_prediction(s, done, verdict({"weapons": 0.2}))  # already has m1's prediction
        failed = make_item(s, status="queued")
        s.execute(update(Item).where(Item.id == failed).values(status="failed"))
        reviewing = make_item(s, status="scored", priority=1)  # the reviewer's next item
        held = _imported(s)
        s.execute(
            update(Item)
            .where(Item.id == held)
            .values(lease_holder="alice", lease_expires_at=t0 + timedelta(seconds=60))
        )
        hopeless = _imported(s)
        s.execute(update(Item).where(Item.id == hopeless).values(meta={"score_attempts": 3}))
    with unit_of_work(engine) as s:
        assert claim_next(s, "bob", QueueFilters(include_unscored=False)).item_id == reviewing

    got = _backfill(engine, "w1", max_attempts=3, now=t0)
    assert got == sorted([decided, escalated, old_model])
    assert queued not in got and done not in got and failed not in got
    assert reviewing not in got and held not in got and hopeless not in got
    # Without an attempt limit the item that kept failing is a candidate again.
    assert _backfill(engine, "w2", now=t0) == [hopeless]
    # Nothing twice: the first worker's leases are live.
    assert _backfill(engine, "w3", now=t0) == []
    # The reviewer's lease on the decided item is respected until it runs out.
    assert _backfill(engine, "w3", now=t0 + timedelta(seconds=61)) == [held]
    # A cursor: only ids above after_id.
    assert _backfill(engine, "w4", now=t0 + timedelta(hours=1), after_id=escalated) == sorted(
        [old_model, held, hopeless]
    )

    with unit_of_work(engine) as s:
        item = s.get(Item, decided)
        assert (item.status, item.priority, item.lease_holder) == ("decided", 7, "w1")
        claim = s.scalar(select(Claim).where(Claim.item_id == decided, Claim.holder == "w1"))
        assert claim.kind == "score" and claim.token == item.lease_token
        events = list_audit(s, action="item.claimed_for_scoring", item_id=decided)
        assert events[0].details["backfill"] is True
        assert s.get(Item, reviewing).lease_holder == "bob"
        assert s.get(Item, reviewing).status == "in_review"


def test_backfill_prediction_keeps_status_decision_and_priority(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        decided = _imported(s, priority=3, categories=("weapons",))
        queued = make_item(s, status="queued", priority=3)
    assert _backfill(engine, "w1") == [decided]
    flagged = verdict({"weapons": 0.95})
    with unit_of_work(engine) as s:
        before = current_decision(s, decided)
        p1 = record_prediction(s, decided, flagged, holder="w1")
        record_prediction(s, queued, flagged)
    with unit_of_work(engine) as s:
        item = s.get(Item, decided)
        assert (item.status, item.priority) == ("decided", 3)  # no first-score boost
        assert item.lease_holder is None and item.lease_token is None
        assert current_decision(s, decided) == before
        claim = s.scalar(select(Claim).where(Claim.item_id == decided))
        assert claim.outcome == "scored" and claim.ended_at is not None
        # The queued item still gets the boost, as before.
        assert s.get(Item, queued).priority > 3
        # Idempotent: a second verdict for the same model and policy stores nothing new.
        assert record_prediction(s, decided, flagged) == p1
    assert _backfill(engine, "w2") == []


def test_killed_backfill_claims_expire_and_are_taken_again(engine: Engine) -> None:
    t0 = utcnow()
    with unit_of_work(engine) as s:
        decided = _imported(s)
    assert _backfill(engine, "doomed", lease_s=5, now=t0) == [decided]
    assert _backfill(engine, "rescuer", now=t0 + timedelta(seconds=4)) == []
    assert _backfill(engine, "rescuer", now=t0 + timedelta(seconds=6)) == [decided]
    with unit_of_work(engine) as s:
        claims = s.scalars(select(Claim).where(Claim.item_id == decided).order_by(Claim.id)).all()
        assert [(c.holder, c.outcome) for c in claims] == [("doomed", "expired"), ("rescuer", None)]
        assert s.get(Item, decided).status == "decided"
