"""Every review action checks who holds the item, on SQLite and PostgreSQL.

Escalate, skip, reveal and decide act only on an item the caller holds under a live lease;
changing a decided or escalated item is an overrule, by an admin or an engineer only, recorded
as such; restricted categories are revealed only to the roles the policy names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from storage import review
from storage.audit import list_audit
from storage.db import unit_of_work
from storage.decisions import current_decision, decision_history
from storage.domain import Verdict
from storage.errors import Conflict, PermissionDenied
from storage.models import Decision as DecisionRow
from storage.models import Item, utcnow
from storage.policy import Policy, load_policy
from storage.queue import claim_next, escalate, record_prediction
from storage.settings import DEFAULT_POLICY
from storage.users import create_user
from tests.storage._core_factories import make_item

POLICY = load_policy(DEFAULT_POLICY)

Action = Callable[..., object]
ACTIONS: dict[str, Action] = {
    "escalate": lambda s, who, item: review.escalate(s, who, item, note="looks bad"),
    "skip": lambda s, who, item: review.skip(s, who, item),
    "reveal": lambda s, who, item: review.reveal(s, who, item, policy=POLICY),
    "decide": lambda s, who, item: review.submit(
        s, who, item, ["weapons"], note=None, policy=POLICY
    ),
}
# The audit event each action writes when it goes through.
ACTION_EVENTS = {
    "escalate": "item.escalated",
    "skip": "item.released",
    "reveal": "reveal",
    "decide": "decision.recorded",
}


@pytest.fixture
def users(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        for name, role in (
            ("alice", "moderator"),
            ("bob", "moderator"),
            ("ann", "annotator"),
            ("eng", "engineer"),
            ("root", "admin"),
        ):
            create_user(s, name, f"{name}-password-1", role, actor="test")


def _item(engine: Engine, flagged: dict[str, float] | None = None) -> int:
    with unit_of_work(engine) as s:
        item = make_item(s)
        if flagged:
            scores = {c: 0.01 for c in POLICY.ids} | flagged
            record_prediction(
                s,
                item,
                Verdict(
                    scores=scores,
                    flagged=POLICY.flagged(scores),
                    model_version="m1",
                    policy_version=POLICY.version,
                    latency_ms=1.0,
                ),
            )
    return item


def _claim(engine: Engine, who: str, *, expired: bool = False) -> int:
    now = utcnow() - timedelta(hours=1) if expired else None
    with unit_of_work(engine) as s:
        claimed = claim_next(s, who, lease_s=60, now=now)
    assert claimed is not None
    return claimed.item_id


def _state(engine: Engine, item_id: int) -> tuple[str, str | None, int]:
    """(status, lease holder, number of decision rows) of the item."""
    with unit_of_work(engine) as s:
        item = s.get(Item, item_id)
        rows = s.scalars(select(DecisionRow.id).where(DecisionRow.item_id == item_id)).all()
        return item.status, item.lease_holder, len(rows)


def _events(engine: Engine, action: str, item_id: int) -> int:
    with unit_of_work(engine) as s:
        return len(list_audit(s, action=action, item_id=item_id))


@pytest.mark.parametrize("action", list(ACTIONS))
def test_action_on_an_item_nobody_holds_is_refused(engine, users, action) -> None:
    item = _item(engine)
    with pytest.raises(Conflict, match="you do not hold it"), unit_of_work(engine) as s:
        ACTIONS[action](s, "alice", item)
    assert _state(engine, item) == ("scored", None, 0)
    assert _events(engine, ACTION_EVENTS[action], item) == 0


@pytest.mark.parametrize("action", list(ACTIONS))
def test_action_under_an_expired_lease_is_refused(engine, users, action) -> None:
    item = _item(engine)
    _claim(engine, "alice", expired=True)
    with pytest.raises(Conflict, match="expired"), unit_of_work(engine) as s:
        ACTIONS[action](s, "alice", item)
    assert _state(engine, item) == ("in_review", "alice", 0)
    assert _events(engine, ACTION_EVENTS[action], item) == 0


@pytest.mark.parametrize("action", list(ACTIONS))
def test_action_on_another_reviewers_item_is_refused(engine, users, action) -> None:
    item = _item(engine)
    _claim(engine, "alice")
    for intruder in ("bob", "ann"):
        with pytest.raises(Conflict, match="another reviewer"), unit_of_work(engine) as s:
            ACTIONS[action](s, intruder, item)
    # Alice keeps her lease and can still act.
    assert _state(engine, item) == ("in_review", "alice", 0)
    with unit_of_work(engine) as s:
        ACTIONS[action](s, "alice", item)
    assert _events(engine, ACTION_EVENTS[action], item) == 1


@pytest.mark.parametrize("action", list(ACTIONS))
def test_action_on_a_decided_item_is_refused(engine, users, action) -> None:
    item = _item(engine)
    _claim(engine, "alice")
    with unit_of_work(engine) as s:
        review.submit(s, "alice", item, [], note=None, policy=POLICY)
    before = _events(engine, ACTION_EVENTS[action], item)
    for who in ("alice", "bob", "ann"):
        with pytest.raises(Conflict, match="already decided"), unit_of_work(engine) as s:
            ACTIONS[action](s, who, item)
    assert _state(engine, item) == ("decided", None, 1)
    assert _events(engine, ACTION_EVENTS[action], item) == before


def test_escalated_item_cannot_be_escalated_or_decided_again(engine, users) -> None:
    item = _item(engine)
    _claim(engine, "alice")
    with unit_of_work(engine) as s:
        escalate(s, item, "alice", note="legal")
    for action in ("escalate", "decide", "skip"):
        with pytest.raises(Conflict, match="already escalated"), unit_of_work(engine) as s:
            ACTIONS[action](s, "bob", item)
    assert _state(engine, item) == ("escalated", None, 0)
    assert _events(engine, "item.escalated", item) == 1


@pytest.mark.parametrize("who", ["root", "eng"])
def test_admin_or_engineer_overrule_is_recorded_as_such(engine, users, who) -> None:
    item = _item(engine)
    _claim(engine, "alice")
    with unit_of_work(engine) as s:
        first = review.submit(s, "alice", item, [], note=None, policy=POLICY)
    with unit_of_work(engine) as s:
        d = review.overrule(s, who, item, ["weapons"], note="missed the rifle", policy=POLICY)
    assert d.supersedes_id == first.id and d.categories == ["weapons"] and d.reviewer == who
    with unit_of_work(engine) as s:
        assert current_decision(s, item).id == d.id
        # Append-only: the moderator's decision is still in the ledger.
        assert [h.id for h in decision_history(s, item)] == [first.id, d.id]
        row = s.get(DecisionRow, d.id)
        role = "admin" if who == "root" else "engineer"
        assert row.meta["overrule"] is True and row.meta["role"] == role
        assert row.meta["overrules_id"] == first.id
        [event] = list_audit(s, action="decision.overruled", item_id=item)
        assert event.actor == who and event.details["overrules_id"] == first.id
        assert s.get(Item, item).status == "decided"


def test_overrule_of_an_escalated_item_decides_it(engine, users) -> None:
    item = _item(engine)
    _claim(engine, "alice")
    with unit_of_work(engine) as s:
        review.escalate(s, "alice", item, note="unsure")
    with unit_of_work(engine) as s:
        d = review.overrule(s, "root", item, [], note="fine", policy=POLICY)
    assert d.safe and d.supersedes_id is None
    assert _state(engine, item) == ("decided", None, 1)
    with unit_of_work(engine) as s:
        [event] = list_audit(s, action="decision.overruled", item_id=item)
        assert event.details["status_from"] == "escalated"


@pytest.mark.parametrize("who", ["alice", "bob", "ann", "nobody"])
def test_moderators_and_annotators_cannot_overrule(engine, users, who) -> None:
    item = _item(engine)
    _claim(engine, "alice")
    with unit_of_work(engine) as s:
        review.submit(s, "alice", item, [], note=None, policy=POLICY)
    with pytest.raises(PermissionDenied, match="admin or engineer"), unit_of_work(engine) as s:
        review.overrule(s, who, item, ["weapons"], note=None, policy=POLICY)
    assert _state(engine, item) == ("decided", None, 1)
    assert _events(engine, "decision.overruled", item) == 0


def test_overrule_is_not_a_way_around_the_queue(engine, users) -> None:
    item = _item(engine)
    _claim(engine, "alice")
    with pytest.raises(Conflict, match="not decided"), unit_of_work(engine) as s:
        review.overrule(s, "root", item, ["weapons"], note=None, policy=POLICY)
    assert _state(engine, item) == ("in_review", "alice", 0)


def test_bulk_decisions_need_an_overrule_role_and_are_overrules_on_decided_items(
    engine, users
) -> None:
    decided = _item(engine)
    _claim(engine, "alice")
    with unit_of_work(engine) as s:
        review.submit(s, "alice", decided, [], note=None, policy=POLICY)
    fresh = _item(engine)
    with pytest.raises(PermissionDenied), unit_of_work(engine) as s:
        review.bulk_decide(s, "bob", [decided, fresh], ["drugs"], note=None, policy=POLICY)
    assert _state(engine, decided) == ("decided", None, 1)
    assert _state(engine, fresh) == ("scored", None, 0)
    with unit_of_work(engine) as s:
        review.bulk_decide(s, "root", [decided, fresh], ["drugs"], note=None, policy=POLICY)
    with unit_of_work(engine) as s:
        overruled = list_audit(s, action="decision.overruled")
        assert [e.item_id for e in overruled] == [decided]
        assert s.scalar(select(DecisionRow.meta).where(DecisionRow.item_id == fresh)) == {}


def test_undo_of_ones_own_decision_still_works(engine, users) -> None:
    item = _item(engine)
    _claim(engine, "alice")
    with unit_of_work(engine) as s:
        review.submit(s, "alice", item, ["weapons"], note=None, policy=POLICY)
    with unit_of_work(engine) as s:
        undone = review.undo(s, "alice")
    assert undone.item_id == item and undone.action == "retract"
    assert _state(engine, item)[0] == "scored"


def _restricted_item(engine: Engine) -> int:
    return _item(engine, {"child_safety": 0.9})


@pytest.mark.parametrize("who", ["alice", "ann", "eng"])
def test_restricted_item_is_not_revealed_to_roles_the_policy_does_not_name(
    engine, users, who
) -> None:
    item = _restricted_item(engine)
    _claim(engine, who)
    with pytest.raises(PermissionDenied, match="only admin") as refused, unit_of_work(engine) as s:
        review.reveal(s, who, item, policy=POLICY)
    with unit_of_work(engine) as s:  # the handler's pattern: the refusal in its own unit
        review.record_refusal(s, who, "reveal", item, str(refused.value))
    assert _events(engine, "reveal", item) == 0
    with unit_of_work(engine) as s:
        [event] = list_audit(s, action="reveal.refused", item_id=item)
        assert event.actor == who and "child_safety" in event.details["reason"]
        assert review.exposure(s, who).reveals_total == 0


def test_restricted_item_is_revealed_to_an_admin_holding_it(engine, users) -> None:
    item = _restricted_item(engine)
    _claim(engine, "root")
    with unit_of_work(engine) as s:
        exp = review.reveal(s, "root", item, policy=POLICY)
    assert exp.reveals_total == 1


def test_restricted_label_on_the_current_decision_counts_too(engine, users) -> None:
    policy = load_policy(DEFAULT_POLICY)
    item = _item(engine)
    with unit_of_work(engine) as s:
        assert review.restricted_categories(s, item, policy) == []
    _claim(engine, "alice")
    with unit_of_work(engine) as s:
        review.submit(s, "alice", item, ["child_safety"], note=None, policy=policy)
        assert review.restricted_categories(s, item, policy) == ["child_safety"]


def test_a_policy_can_name_other_reveal_roles(engine, users) -> None:
    raw = POLICY.to_dict()
    for c in raw["categories"]:
        if c["id"] == "child_safety":
            c["reveal_roles"] = ["engineer", "admin"]
    from storage.policy import parse_policy

    policy: Policy = parse_policy(raw)
    item = _restricted_item(engine)
    _claim(engine, "eng")
    with unit_of_work(engine) as s:
        assert review.reveal(s, "eng", item, policy=policy).reveals_total == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [("admin", "non-empty list"), ([], "non-empty list"), (["admin", "root"], "unknown role")],
)
def test_reveal_roles_are_validated(value, message) -> None:
    from storage.policy import PolicyError, parse_policy

    raw = POLICY.to_dict()
    raw["categories"][1]["reveal_roles"] = value
    with pytest.raises(PolicyError, match=r"categories\[1\]\.reveal_roles: .*" + message):
        parse_policy(raw)


def test_reveal_roles_default_admin_for_restricted_and_keep_the_version() -> None:
    from storage.policy import parse_policy

    raw = POLICY.to_dict()
    for c in raw["categories"]:
        del c["reveal_roles"]
    bare = parse_policy(raw)
    assert bare.category("child_safety").reveal_roles == ("admin",)
    assert set(bare.category("weapons").reveal_roles) == {
        "moderator",
        "annotator",
        "engineer",
        "admin",
    }
    # Written out or left to its default, the same roles give the same version.
    assert bare.version == POLICY.version
    raw["categories"][1]["reveal_roles"] = ["admin", "engineer"]
    assert parse_policy(raw).version != POLICY.version


def test_restricted_category_is_blurred_even_where_the_policy_says_blur_false(engine) -> None:
    from storage.policy import parse_policy

    raw = POLICY.to_dict()
    raw["categories"][1]["blur"] = False  # child_safety
    policy = parse_policy(raw)
    item = _restricted_item(engine)
    with unit_of_work(engine) as s:
        card = review.build_card(s, item, policy, blur_nsfw_threshold=0.99)
    assert card.blur is True


def test_scoring_workers_still_give_back_their_own_leases(engine, users) -> None:
    from storage.queue import claim_for_backfill, claim_for_scoring, release

    with unit_of_work(engine) as s:
        queued = make_item(s, status="queued")
        decided = make_item(s, status="decided")
    with unit_of_work(engine) as s:
        [c] = claim_for_scoring(s, "worker-1", limit=1)
        [b] = claim_for_backfill(
            s, "worker-1", model_version="m9", policy_version=POLICY.version, limit=1
        )
    assert (c.item_id, b.item_id) == (queued, decided)
    with pytest.raises(Conflict), unit_of_work(engine) as s:
        release(s, queued, "worker-2", reason="score_failed")
    with unit_of_work(engine) as s:
        release(s, queued, "worker-1", reason="score_failed")
        release(s, decided, "worker-1", reason="worker_error")
    assert _state(engine, queued) == ("queued", None, 0)
    assert _state(engine, decided) == ("decided", None, 0)
    # A reviewer's skip is never a way to take a worker's or a decided item's lease off.
    with unit_of_work(engine) as s:
        claim_for_scoring(s, "worker-1", limit=1)
    with pytest.raises(Conflict), unit_of_work(engine) as s:
        release(s, queued, "worker-1", reason="skip")
