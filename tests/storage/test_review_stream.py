"""The Review card's storage side, on SQLite and PostgreSQL: the accept-suggestion flag on a
decision, the accept rate per reviewer, why a card is blurred, and the escalated stream that
admins and engineers claim, reveal and resolve under a lease.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from storage import reports, review
from storage.audit import list_audit
from storage.db import unit_of_work
from storage.decisions import current_decision
from storage.domain import Verdict
from storage.errors import Conflict, PermissionDenied
from storage.models import Decision as DecisionRow
from storage.models import Item
from storage.policy import load_policy
from storage.queue import claim_next, record_prediction
from storage.settings import DEFAULT_POLICY
from storage.users import create_user
from tests.storage._core_factories import make_item

POLICY = load_policy(DEFAULT_POLICY)


@pytest.fixture
def users(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        for name, role in (("alice", "moderator"), ("eng", "engineer"), ("root", "admin")):
            create_user(s, name, f"{name}-password-1", role, actor="test")


def _item(engine: Engine, flagged: dict[str, float] | None = None, nsfw: float = 0.01) -> int:
    with unit_of_work(engine) as s:
        item = make_item(s)
        scores = {c: 0.01 for c in POLICY.ids} | (flagged or {})
        record_prediction(
            s,
            item,
            Verdict(
                scores=scores,
                flagged=POLICY.flagged(scores),
                model_version="m1",
                policy_version=POLICY.version,
                latency_ms=1.0,
                signals={"nsfw": nsfw},
            ),
        )
    return item


def _claim(engine: Engine, who: str) -> int:
    with unit_of_work(engine) as s:
        claimed = claim_next(s, who, lease_s=60)
    assert claimed is not None
    return claimed.item_id


def _escalated(engine: Engine, flagged: dict[str, float] | None = None) -> int:
    """An item alice claimed and escalated."""
    item = _item(engine, flagged)
    assert _claim(engine, "alice") == item
    with unit_of_work(engine) as s:
        review.escalate(s, "alice", item, note="not sure")
    return item


def test_accepting_the_suggestion_is_recorded_as_such(engine, users) -> None:
    first = _item(engine, {"weapons": 0.9, "drugs": 0.8})
    second = _item(engine, {"weapons": 0.9})
    with unit_of_work(engine) as s:
        claim_next(s, "alice", lease_s=60)
        claim_next(s, "alice", lease_s=60)
        review.submit(
            s,
            "alice",
            first,
            ["drugs", "weapons"],
            note=None,
            policy=POLICY,
            accepted_suggestion=True,
        )
        review.submit(s, "alice", second, ["weapons"], note=None, policy=POLICY)
    with unit_of_work(engine) as s:
        metas = {d.item_id: d.meta for d in s.scalars(select(DecisionRow)).all()}
        rate = reports.accept_rate(s)
    assert metas[first]["accepted_model_suggestion"] is True
    assert metas[first]["model_version"] == "m1"
    assert "accepted_model_suggestion" not in metas[second]
    assert rate.to_dict("records") == [
        {"reviewer": "alice", "decisions": 2, "accepted": 1, "accept_rate": 0.5}
    ]


def test_accept_refuses_categories_that_are_not_the_models(engine, users) -> None:
    item = _item(engine, {"weapons": 0.9})
    _claim(engine, "alice")
    with pytest.raises(Conflict, match="suggestion is now weapons"), unit_of_work(engine) as s:
        review.submit(
            s, "alice", item, ["drugs"], note=None, policy=POLICY, accepted_suggestion=True
        )
    with unit_of_work(engine) as s:
        assert current_decision(s, item) is None


def test_a_blurred_card_says_why_and_marks_graphic_categories(engine, users) -> None:
    gore = _item(engine, {"violence_gore": 0.91})
    nsfw_only = _item(engine, nsfw=0.8)
    safe = _item(engine)
    with unit_of_work(engine) as s:
        cards = review.build_cards(s, [gore, nsfw_only, safe], POLICY, blur_nsfw_threshold=0.4)
    assert cards[gore].blur and cards[gore].blur_reason == "violence_gore 0.91"
    assert cards[gore].graphic == ["violence_gore"]
    assert cards[nsfw_only].blur and cards[nsfw_only].blur_reason == "NSFW 0.80"
    assert cards[nsfw_only].graphic == []
    assert not cards[safe].blur and cards[safe].blur_reason == "" and cards[safe].graphic == []


def test_admin_claims_reveals_and_resolves_an_escalated_restricted_item(engine, users) -> None:
    item = _escalated(engine, {"child_safety": 0.9})
    with unit_of_work(engine) as s:
        assert review.pending_escalations(s) == 1
        [card] = review.escalated_window(s, "root", POLICY, blur_nsfw_threshold=0.4, size=3)
    assert card.item_id == item and card.status == "escalated"
    with unit_of_work(engine) as s:
        row = s.get(Item, item)
        assert row.status == "escalated" and row.lease_holder == "root"
        # The same window again keeps the item held, claims nothing new.
        again = review.escalated_window(s, "root", POLICY, blur_nsfw_threshold=0.4, keep=item)
        assert [c.item_id for c in again] == [item]
    with unit_of_work(engine) as s:
        assert review.reveal(s, "root", item, policy=POLICY).reveals_total == 1
    with unit_of_work(engine) as s:
        d = review.resolve_escalated(
            s,
            "root",
            item,
            ["child_safety"],
            note="confirmed",
            policy=POLICY,
            accepted_suggestion=True,
        )
    assert d.categories == ["child_safety"]
    with unit_of_work(engine) as s:
        row = s.get(Item, item)
        meta = s.get(DecisionRow, d.id).meta
        assert row.lease_holder is None and row.status == "escalated"  # restricted stays so
        assert meta["overrule"] and meta["resolution"] and meta["accepted_model_suggestion"]
        assert list_audit(s, action="decision.overruled", item_id=item)
        # Resolved: out of the stream, even though a restricted label keeps it escalated.
        assert review.pending_escalations(s) == 0
        assert review.escalated_window(s, "root", POLICY, blur_nsfw_threshold=0.4) == []


def test_an_engineer_works_the_stream_but_cannot_reveal_a_restricted_item(engine, users) -> None:
    restricted = _escalated(engine, {"child_safety": 0.9})
    with unit_of_work(engine) as s:
        assert review.claim_escalated(s, "eng") == restricted
    with pytest.raises(PermissionDenied, match="only admin"), unit_of_work(engine) as s:
        review.reveal(s, "eng", restricted, policy=POLICY)
    with unit_of_work(engine) as s:
        review.resolve_escalated(s, "eng", restricted, [], note=None, policy=POLICY)
        assert s.get(Item, restricted).status == "decided"


def test_the_escalated_stream_is_not_for_moderators(engine, users) -> None:
    _escalated(engine)
    with pytest.raises(PermissionDenied), unit_of_work(engine) as s:
        review.claim_escalated(s, "alice")


def test_an_escalated_item_held_by_one_admin_is_not_handed_to_another(engine, users) -> None:
    item = _escalated(engine)
    with unit_of_work(engine) as s:
        assert review.claim_escalated(s, "root") == item
        assert review.claim_escalated(s, "eng") is None
    with pytest.raises(Conflict, match="someone else holds it"), unit_of_work(engine) as s:
        review.resolve_escalated(s, "eng", item, [], note=None, policy=POLICY)
    with pytest.raises(Conflict, match="someone else holds it"), unit_of_work(engine) as s:
        review.reveal(s, "eng", item, policy=POLICY)
    # A skip gives it back, still escalated, for the next admin or engineer.
    with unit_of_work(engine) as s:
        review.release_escalated(s, "root", item)
    with unit_of_work(engine) as s:
        assert s.get(Item, item).status == "escalated"
        assert review.claim_escalated(s, "eng") == item


def test_resolving_needs_the_escalation_lease(engine, users) -> None:
    item = _escalated(engine)
    with pytest.raises(Conflict, match="you do not hold it"), unit_of_work(engine) as s:
        review.resolve_escalated(s, "root", item, [], note=None, policy=POLICY)


def test_a_decision_equal_to_the_prefilled_flags_is_marked_as_such(engine, users) -> None:
    kept = _item(engine, {"weapons": 0.9})
    changed = _item(engine, {"weapons": 0.9})
    with unit_of_work(engine) as s:
        claim_next(s, "alice", lease_s=60)
        claim_next(s, "alice", lease_s=60)
        review.submit(s, "alice", kept, ["weapons"], note=None, policy=POLICY, prefilled=True)
        review.submit(s, "alice", changed, ["drugs"], note=None, policy=POLICY, prefilled=True)
    with unit_of_work(engine) as s:
        metas = {d.item_id: d.meta for d in s.scalars(select(DecisionRow)).all()}
        rate = reports.accept_rate(s)
    assert metas[kept]["prefilled_model_flags"] is True
    assert "prefilled_model_flags" not in metas[changed]
    # Only the accept key counts as an accepted suggestion.
    assert rate.to_dict("records")[0]["accepted"] == 0
