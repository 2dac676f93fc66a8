"""Decision ledger: append-only corrections, escalation, idempotent replays, undo, hash bank."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from storage.audit import list_audit
from storage.db import unit_of_work
from storage.decisions import (
    current_decision,
    decision_history,
    record_decision,
    undo_last_decision,
)
from storage.domain import DecisionAction
from storage.errors import Conflict, NotFound, WardenError
from storage.models import Claim, HashBankEntry, Item, User, utcnow
from storage.models import Decision as DecisionRow
from storage.policy import load_policy
from storage.queue import claim_next
from storage.settings import DEFAULT_POLICY
from tests.storage._core_factories import make_item

POLICY = load_policy(DEFAULT_POLICY)


def _add_user(engine: Engine, name: str) -> None:
    with unit_of_work(engine) as s:
        s.add(User(username=name, password_hash="x", role="moderator"))


def test_decision_closes_lease_and_correction_supersedes(engine: Engine) -> None:
    _add_user(engine, "alice")
    with unit_of_work(engine) as s:
        item = make_item(s)
    with unit_of_work(engine) as s:
        claim_next(s, "alice")
        first = record_decision(
            s,
            item_id=item,
            categories=["Weapons", "safe"],
            source="moderator",
            reviewer="alice",
            policy=POLICY,
            require_lease=True,
            note="gun",
        )
    assert first.categories == ["weapons"] and first.reviewer == "alice"
    assert first.policy_version == POLICY.version and first.supersedes_id is None
    with unit_of_work(engine) as s:
        item_row = s.get(Item, item)
        assert item_row.status == "decided" and item_row.lease_holder is None
        assert s.scalar(select(Claim.outcome).where(Claim.item_id == item)) == "decided"
        second = record_decision(
            s,
            item_id=item,
            categories=[],
            source="label_studio",
            reviewer="ann@ls",
            policy=POLICY,
        )
    assert second.supersedes_id == first.id and second.reviewer == "ann@ls" and second.safe
    with unit_of_work(engine) as s:
        assert current_decision(s, item) == second
        history = decision_history(s, item)
        assert [d.id for d in history] == [first.id, second.id]
        # The first row is untouched: corrections append, never erase.
        assert history[0].categories == ["weapons"] and history[0].note == "gun"
        assert s.scalar(select(func.count()).select_from(DecisionRow)) == 2
        events = list_audit(s, action="decision.recorded", item_id=item)
        assert [e.details["decision_id"] for e in events] == [second.id, first.id]


def test_restricted_category_escalates(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        item = make_item(s)
    with unit_of_work(engine) as s:
        d = record_decision(
            s,
            item_id=item,
            categories=["child_safety"],
            source="moderator",
            reviewer="bob",
            policy=POLICY,
        )
        assert d.categories == ["child_safety"]
    with unit_of_work(engine) as s:
        assert s.get(Item, item).status == "escalated"
        assert list_audit(s, item_id=item)[0].details["status_to"] == "escalated"


def test_unknown_category_and_source_are_refused(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        item = make_item(s)
    with unit_of_work(engine) as s, pytest.raises(WardenError, match="unknown category"):
        record_decision(s, item_id=item, categories=["nope"], source="moderator", policy=POLICY)
    with unit_of_work(engine) as s, pytest.raises(WardenError, match="unknown decision source"):
        record_decision(s, item_id=item, categories=[], source="martians")
    with unit_of_work(engine) as s, pytest.raises(NotFound):
        record_decision(s, item_id=424242, categories=[], source="moderator")
    with unit_of_work(engine) as s:
        assert decision_history(s, item) == []
        assert s.get(Item, item).status == "scored"


def test_external_ref_replay_is_idempotent(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        item = make_item(s)
    kw = dict(
        item_id=item,
        categories=["drugs"],
        source="label_studio",
        reviewer="ann",
        external_ref="ls:1:9:2026-01-01",
        policy=POLICY,
    )
    with unit_of_work(engine) as s:
        d1 = record_decision(s, **kw)
    with unit_of_work(engine) as s:
        d2 = record_decision(s, **kw)
        assert d1 == d2
        assert len(decision_history(s, item)) == 1


def test_require_lease_refuses_expired_or_foreign_lease(engine: Engine) -> None:
    t0 = utcnow()
    with unit_of_work(engine) as s:
        item = make_item(s)
    with unit_of_work(engine) as s:
        claim_next(s, "alice", lease_s=5, now=t0)
    with unit_of_work(engine) as s, pytest.raises(Conflict):
        record_decision(
            s, item_id=item, categories=[], source="moderator", reviewer="bob", require_lease=True
        )
    with unit_of_work(engine) as s, pytest.raises(Conflict, match="expired"):
        record_decision(
            s,
            item_id=item,
            categories=[],
            source="moderator",
            reviewer="alice",
            require_lease=True,
            now=t0 + timedelta(seconds=6),
        )
    with unit_of_work(engine) as s:
        d = record_decision(
            s,
            item_id=item,
            categories=[],
            source="moderator",
            reviewer="alice",
            require_lease=True,
            now=t0 + timedelta(seconds=1),
        )
        assert d.safe


def test_undo_retracts_and_requeues(engine: Engine) -> None:
    _add_user(engine, "alice")
    with unit_of_work(engine) as s:
        a = make_item(s)
        b = make_item(s)
    with unit_of_work(engine) as s:
        record_decision(
            s,
            item_id=a,
            categories=["scam_fraud"],
            source="moderator",
            reviewer="alice",
            policy=POLICY,
        )
        db = record_decision(
            s, item_id=b, categories=[], source="moderator", reviewer="alice", policy=POLICY
        )
    with unit_of_work(engine) as s:
        undo = undo_last_decision(s, "alice")
    assert undo.action == DecisionAction.retract and undo.supersedes_id == db.id
    with unit_of_work(engine) as s:
        assert current_decision(s, b) is None
        assert s.get(Item, b).status == "scored"
        assert len(decision_history(s, b)) == 2
        assert current_decision(s, a) is not None
        # The next undo goes one further back, to item a.
        assert undo_last_decision(s, "alice").item_id == a
        with pytest.raises(NotFound):
            undo_last_decision(s, "alice")
        assert claim_next(s, "alice").item_id == a


def test_violating_decision_adds_phash_to_hash_bank(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        bad = make_item(s, phash="00ff00ff00ff00ff")
        good = make_item(s, phash="1111111111111111")
    with unit_of_work(engine) as s:
        record_decision(
            s,
            item_id=bad,
            categories=["hate_extremism"],
            source="moderator",
            reviewer="carol",
            policy=POLICY,
        )
        record_decision(
            s, item_id=good, categories=[], source="moderator", reviewer="carol", policy=POLICY
        )
        record_decision(
            s,
            item_id=bad,
            categories=["hate_extremism", "harassment"],
            source="moderator",
            reviewer="dan",
            policy=POLICY,
        )
    with unit_of_work(engine) as s:
        rows = s.scalars(select(HashBankEntry)).all()
        assert [(r.phash, r.item_id, r.categories) for r in rows] == [
            ("00ff00ff00ff00ff", bad, ["hate_extremism", "harassment"])
        ]
