"""Review handlers called over raw HTTP act only on an item the caller holds under a live lease.

An annotator (any logged-in user) can send the Review tab's save, reveal and greyscale
handlers any item id (FACTS); these tests do so the way an attacker would, with
`POST /ui/gradio_api/queue/join`, and check that the database did not move.
"""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select

from storage.audit import list_audit
from storage.db import unit_of_work
from storage.models import AuditEvent, Item
from storage.queue import claim_next, escalate
from tests.app.conftest import LiveApp
from tests.app.test_security import COOKIE, call_handler, call_handlers, run_dependency


def _claim(app: LiveApp, who: str, expected: int) -> None:
    with unit_of_work(app.engine) as s:
        claimed = claim_next(s, who, lease_s=600)
    assert claimed is not None and claimed.item_id == expected


def _item(app: LiveApp, item_id: int) -> tuple[str, str | None]:
    with unit_of_work(app.engine) as s:
        item = s.get(Item, item_id)
        return item.status, item.lease_holder


def _events(app: LiveApp, actor: str, action: str) -> list[AuditEvent]:
    with unit_of_work(app.engine) as s:
        rows = s.scalars(
            select(AuditEvent).where(AuditEvent.actor == actor, AuditEvent.action == action)
        ).all()
        s.expunge_all()
        return list(rows)


def call_save(app: LiveApp, cookie: str, elem_id: str, data: list) -> dict:
    """Run the server step chained (`.then`) after the browser-only click step of `elem_id`,
    as the page would, with our own `data`; returns the final message."""
    jar = {COOKIE: cookie}
    config = httpx.get(f"{app.base_url}/ui/config", cookies=jar).json()
    comp = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    deps = config["dependencies"]
    click = next(d for d in deps if any(t[0] == comp["id"] for t in d.get("targets", [])))
    dep = next(d for d in deps if d.get("trigger_after") == click["id"] and d.get("backend_fn"))
    return run_dependency(app, jar, dep["id"], comp["id"], data)


def _escalate_over_http(app: LiveApp, cookie: str, item_id: int) -> dict:
    pending = json.dumps({"action": "escalate", "item_id": str(item_id), "note": "mine now"})
    msg = call_save(app, cookie, "wd-escalate", [pending, "", False])
    assert msg["success"] is True, msg
    return msg


def test_annotator_cannot_escalate_an_item_another_reviewer_holds(live_app: LiveApp) -> None:
    live_app.add_user("lease_holder", "moderator")
    live_app.add_user("lease_ann", "annotator")
    [held] = live_app.seed_items(1, source="lease-held", verdicts=[live_app.verdict()])
    _claim(live_app, "lease_holder", held)
    cookie = live_app.login_cookie("lease_ann")

    msg = _escalate_over_http(live_app, cookie, held)

    message = msg["output"]["data"][-1]
    assert "NOT saved" in message and "another reviewer holds it" in message, message
    # The holder keeps the item and its lease; nothing was escalated.
    assert _item(live_app, held) == ("in_review", "lease_holder")
    with unit_of_work(live_app.engine) as s:
        assert list_audit(s, action="item.escalated", item_id=held) == []
    [refused] = _events(live_app, "lease_ann", "escalate.refused")
    assert refused.item_id == held


def test_annotator_cannot_escalate_a_decided_item(live_app: LiveApp) -> None:
    from storage import review

    live_app.add_user("lease_decider", "moderator")
    live_app.add_user("lease_ann2", "annotator")
    [done] = live_app.seed_items(1, source="lease-decided", verdicts=[live_app.verdict()])
    _claim(live_app, "lease_decider", done)
    with unit_of_work(live_app.engine) as s:
        review.submit(s, "lease_decider", done, [], note=None, policy=live_app.policy)
    cookie = live_app.login_cookie("lease_ann2")

    msg = _escalate_over_http(live_app, cookie, done)

    message = msg["output"]["data"][-1]
    assert "NOT saved" in message and "already decided" in message, message
    assert _item(live_app, done) == ("decided", None)


def test_annotator_cannot_reveal_an_escalated_child_safety_item(live_app: LiveApp) -> None:
    live_app.add_user("cs_mod", "moderator")
    live_app.add_user("cs_ann", "annotator")
    [item] = live_app.seed_items(
        1, source="lease-cs", verdicts=[live_app.verdict({"child_safety": 0.95}, nsfw=0.9)]
    )
    _claim(live_app, "cs_mod", item)
    with unit_of_work(live_app.engine) as s:
        escalate(s, item, "cs_mod", note="child safety")
    cookie = live_app.login_cookie("cs_ann")

    msg = call_handler(live_app, cookie, "wd-reveal", [str(item), False])

    assert msg["success"] is False, msg
    body = json.dumps(msg)
    assert "already escalated" in body and "/img/" not in body
    assert _events(live_app, "cs_ann", "reveal") == []
    [refused] = _events(live_app, "cs_ann", "reveal.refused")
    assert refused.item_id == item
    # Greyscale re-render is another way to ask for the item's images (the card's and the
    # media strip's): the card's re-render is refused, and no handler hands out an image URL.
    msgs = call_handlers(live_app, cookie, "wd-grey", [str(item), True])
    assert len(msgs) >= 2, msgs
    assert all("/img/" not in json.dumps(m) for m in msgs), msgs
    assert any(m["success"] is False for m in msgs), msgs


def test_child_safety_item_is_revealed_to_its_holder_only_if_the_policy_names_the_role(
    live_app: LiveApp,
) -> None:
    live_app.add_user("cs_mod2", "moderator")
    live_app.add_user("cs_admin", "admin")
    [first, second] = live_app.seed_items(
        2,
        source="lease-cs2",
        verdicts=[live_app.verdict({"child_safety": 0.95}, nsfw=0.9)] * 2,
    )
    _claim(live_app, "cs_mod2", first)
    msg = call_handler(live_app, live_app.login_cookie("cs_mod2"), "wd-reveal", [str(first), False])
    assert msg["success"] is False and "only admin" in json.dumps(msg), msg
    assert _events(live_app, "cs_mod2", "reveal") == []
    assert len(_events(live_app, "cs_mod2", "reveal.refused")) == 1

    _claim(live_app, "cs_admin", second)
    cookie = live_app.login_cookie("cs_admin")
    msg = call_handler(live_app, cookie, "wd-reveal", [str(second), False])
    assert msg["success"] is True, msg
    assert "v=view" in json.dumps(msg["output"]["data"])
    assert [e.item_id for e in _events(live_app, "cs_admin", "reveal")] == [second]


def test_only_admins_and_engineers_overrule_a_decided_item_over_http(live_app: LiveApp) -> None:
    from storage import review
    from storage.decisions import current_decision
    from storage.models import Decision

    live_app.add_user("ov_mod", "moderator")
    live_app.add_user("ov_eng", "engineer")
    [item] = live_app.seed_items(1, source="lease-ov", verdicts=[live_app.verdict()])
    _claim(live_app, "ov_mod", item)
    with unit_of_work(live_app.engine) as s:
        first = review.submit(s, "ov_mod", item, [], note=None, policy=live_app.policy)

    msg = call_handler(
        live_app, live_app.login_cookie("ov_mod"), "q-ov-go", [str(item), ["weapons"], "mine"]
    )
    assert msg["success"] is False and "Not permitted" in json.dumps(msg), msg
    msg = call_handler(
        live_app, live_app.login_cookie("ov_eng"), "q-ov-go", [str(item), ["weapons"], "audit"]
    )
    assert msg["success"] is True, msg
    assert "overruled as weapons" in msg["output"]["data"][0]
    with unit_of_work(live_app.engine) as s:
        d = current_decision(s, item)
        assert d.supersedes_id == first.id and d.reviewer == "ov_eng"
        assert s.get(Decision, d.id).meta["overrule"] is True
        [event] = list_audit(s, action="decision.overruled", item_id=item)
        assert event.actor == "ov_eng"
