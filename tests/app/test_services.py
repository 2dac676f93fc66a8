"""The plain service functions behind the UI (storage.review, storage.reports), on SQLite and
PostgreSQL: claiming with prefetch, deciding, undo, reveals and exposure, queue filters, bulk
decisions, and the dashboard's agreement / precision / recall / calibration numbers.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
from sqlalchemy import Engine, select

from storage import reports, review
from storage.db import unit_of_work
from storage.domain import Verdict
from storage.models import AuditEvent, Blob, Decision, Item
from storage.policy import Policy, load_policy
from storage.queue import record_prediction
from storage.settings import DEFAULT_POLICY
from storage.users import create_user

_n = itertools.count()
BLUR = 0.4


@pytest.fixture
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY)


def add_item(
    engine: Engine,
    policy: Policy,
    scores: dict[str, float] | None = None,
    *,
    priority: int = 0,
    source: str = "svc",
    nsfw: float | None = 0.0,
) -> int:
    """An item (fake blob) and, when `scores` is given, its prediction."""
    sha = hashlib.sha256(f"svc-{next(_n)}-{id(engine)}".encode()).hexdigest()
    with unit_of_work(engine) as s:
        s.add(Blob(sha256=sha, size_bytes=1, mime="image/png", width=1, height=1))
        item = Item(
            blob_sha256=sha,
            view_sha256=sha,
            source=source,
            status="queued",
            priority=priority,
            filename=f"{sha[:6]}.png",
        )
        s.add(item)
        s.flush()
        if scores is not None:
            full = {c: 0.01 for c in policy.ids} | scores
            record_prediction(
                s,
                item.id,
                Verdict(
                    scores=full,
                    flagged=policy.flagged(full),
                    model_version="m1",
                    policy_version=policy.version,
                    latency_ms=1.0,
                    signals={"nsfw": nsfw} if nsfw is not None else {},
                ),
            )
        return item.id


@pytest.fixture
def users(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        create_user(s, "alice", "alice-password", "moderator")
        create_user(s, "bob", "bob-password-1", "moderator")
        create_user(s, "root", "root-password", "admin")


def test_claim_pair_prefetches_and_reuses_held_items(engine, policy, users) -> None:
    a = add_item(engine, policy, {}, priority=3)
    b = add_item(engine, policy, {}, priority=2)
    c = add_item(engine, policy, {}, priority=1)
    with unit_of_work(engine) as s:
        cur, nxt = review.claim_pair(s, "alice", policy, blur_nsfw_threshold=BLUR)
    assert (cur.item_id, nxt.item_id) == (a, b)
    with unit_of_work(engine) as s:  # asking again claims nothing new
        cur2, nxt2 = review.claim_pair(s, "alice", policy, blur_nsfw_threshold=BLUR, keep=b)
    assert (cur2.item_id, nxt2.item_id) == (b, a)
    with unit_of_work(engine) as s:  # bob never gets alice's items
        bob_cur, bob_next = review.claim_pair(s, "bob", policy, blur_nsfw_threshold=BLUR)
    assert bob_cur.item_id == c and bob_next is None


def test_submit_then_undo(engine, policy, users) -> None:
    a = add_item(engine, policy, {"weapons": 0.9}, priority=2)
    b = add_item(engine, policy, {}, priority=1)
    with unit_of_work(engine) as s:
        review.claim_pair(s, "alice", policy, blur_nsfw_threshold=BLUR)
        d = review.submit(s, "alice", a, ["weapons", "safe"], note=" looks real ", policy=policy)
    assert d.categories == ["weapons"] and d.note == "looks real"
    with unit_of_work(engine) as s:
        assert s.get(Item, a).status == "decided"
        cur, nxt = review.claim_pair(s, "alice", policy, blur_nsfw_threshold=BLUR, exclude=[a])
    assert cur.item_id == b and nxt is None
    with unit_of_work(engine) as s:
        undone = review.undo(s, "alice")
        assert s.get(Item, a).status != "decided"
    assert undone.item_id == a and undone.action == "retract"


def test_submit_without_the_lease_is_refused(engine, policy, users) -> None:
    from storage.errors import WardenError

    a = add_item(engine, policy, {})
    with unit_of_work(engine) as s:
        review.claim_pair(s, "alice", policy, blur_nsfw_threshold=BLUR)
    with pytest.raises(WardenError), unit_of_work(engine) as s:
        review.submit(s, "bob", a, [], note=None, policy=policy)


def test_reveals_are_audited_and_counted(engine, policy, users) -> None:
    a = add_item(engine, policy, {"sexual": 0.9})
    with unit_of_work(engine) as s:
        assert review.exposure(s, "alice") == review.Exposure(0, 0)
        review.claim_pair(s, "alice", policy, blur_nsfw_threshold=BLUR)  # reveals need the lease
        review.reveal(s, "alice", a, policy=policy)
        exp = review.reveal(s, "alice", a, policy=policy)
    assert exp == review.Exposure(reveals_total=2, reveals_today=2)
    with unit_of_work(engine) as s:
        assert review.exposure(s, "bob").reveals_total == 0
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "reveal")).all()
    assert [(e.actor, e.item_id) for e in events] == [("alice", a), ("alice", a)]


def test_blur_rules(engine, policy) -> None:
    cases = {
        add_item(engine, policy, None): True,  # not scored yet: unknown content
        add_item(engine, policy, {"sexual": 0.9}): True,  # a blur category over threshold
        add_item(engine, policy, {"weapons": 0.9}): False,  # flagged but not a blur category
        add_item(engine, policy, {}, nsfw=0.8): True,  # NSFW signal over the level
        add_item(engine, policy, {}, nsfw=0.1): False,
    }
    with unit_of_work(engine) as s:
        cards = review.build_cards(s, list(cases), policy, blur_nsfw_threshold=BLUR)
    assert {i: cards[i].blur for i in cases} == cases
    unscored = next(iter(cases))
    assert cards[unscored].scored is False


def test_queue_filters_and_bulk(engine, policy, users) -> None:
    scam = add_item(engine, policy, {"scam_fraud": 0.8}, source="bulk-a")
    mild = add_item(engine, policy, {"scam_fraud": 0.3}, source="bulk-a")
    other = add_item(engine, policy, {}, source="bulk-b")
    with unit_of_work(engine) as s:
        by_cat = review.list_queue(s, categories=["scam_fraud"])
        by_score = review.list_queue(s, source="bulk-a", min_score=0.5)
        by_src = review.list_queue(s, source="bulk-b")
    assert [r.item_id for r in by_cat] == [scam]
    assert [r.item_id for r in by_score] == [scam]
    assert [r.item_id for r in by_src] == [other]
    with unit_of_work(engine) as s:
        out = review.bulk_decide(s, "root", [scam, mild, scam], ["drugs"], note="x", policy=policy)
    assert len(out) == 2  # one per item, duplicates collapsed
    with unit_of_work(engine) as s:
        rows = s.scalars(select(Decision).where(Decision.item_id.in_([scam, mild]))).all()
        assert sorted(d.item_id for d in rows) == sorted([scam, mild])
        assert {d.source for d in rows} == {"bulk"}
        # The model flagged scam_fraud on `scam`, the decision says drugs: a disagreement.
        dis = review.list_queue(s, disagreement_only=True)
    assert scam in [r.item_id for r in dis] and other not in [r.item_id for r in dis]


def test_reports_agreement_precision_recall(engine, policy, users) -> None:
    # model flags scam on 1,2; moderators say scam on 1,3 -> tp 1, fp 1, fn 1
    ids = [
        add_item(engine, policy, {"scam_fraud": 0.9}),
        add_item(engine, policy, {"scam_fraud": 0.8}),
        add_item(engine, policy, {"scam_fraud": 0.1}),
        add_item(engine, policy, {}),
    ]
    labels = [["scam_fraud"], [], ["scam_fraud"], []]
    with unit_of_work(engine) as s:
        for i, lab in zip(ids, labels, strict=True):
            review.bulk_decide(s, "root", [i], lab, note=None, policy=policy)
    with unit_of_work(engine) as s:
        agree = reports.agreement(s, policy).set_index("category")
        cats = reports.decisions_by_category(s, policy).set_index("category")
        cal = reports.calibration(s, policy)
        back = reports.backlog(s).set_index("status")
        vol = reports.volume_over_time(s, days=2)
    row = agree.loc["scam_fraud"]
    assert (row.tp, row.fp, row.fn, row.tn) == (1, 1, 1, 1)
    assert row.precision == pytest.approx(0.5) and row.recall == pytest.approx(0.5)
    assert cats.loc["scam_fraud", "decisions"] == 2 and cats.loc["safe", "decisions"] == 2
    assert cal["count"].sum() == 4 * len(policy.ids)
    assert back["items"].sum() == 0  # everything is decided
    assert vol["items"].sum() == 4 and vol["decisions"].sum() == 4
