"""Item read models: one item with prediction and decision, filtered lists, queue stats."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from storage.db import unit_of_work
from storage.decisions import record_decision
from storage.errors import NotFound, WardenError
from storage.items import get_item, list_items, queue_stats
from storage.queue import claim_next, record_prediction
from tests.storage._core_factories import make_item, verdict


def _seed(engine: Engine) -> dict[str, int]:
    with unit_of_work(engine) as s:
        ids = {
            "agree": make_item(s, status="queued", source="forum", text="buy pills"),
            "disagree": make_item(s, status="queued", source="forum"),
            "pending": make_item(s, status="queued", source="chat"),
            "unscored": make_item(s, status="queued", source="chat"),
        }
        record_prediction(s, ids["agree"], verdict({"drugs": 0.9, "weapons": 0.1}))
        record_prediction(s, ids["disagree"], verdict({"drugs": 0.2, "weapons": 0.8}))
        record_prediction(s, ids["pending"], verdict({"drugs": 0.4, "weapons": 0.3}))
        record_decision(
            s, item_id=ids["agree"], categories=["drugs"], source="moderator", reviewer="alice"
        )
        record_decision(
            s, item_id=ids["disagree"], categories=[], source="label_studio", reviewer="ann"
        )
    return ids


def test_get_item_shows_prediction_and_decision(engine: Engine) -> None:
    ids = _seed(engine)
    with unit_of_work(engine) as s:
        v = get_item(s, ids["agree"])
        assert v.status == "decided" and v.source == "forum" and v.text == "buy pills"
        assert v.prediction.scores == {"drugs": 0.9, "weapons": 0.1}
        assert v.prediction.flagged == ["drugs"] and v.prediction.model_version == "m1"
        assert v.decision.categories == ["drugs"] and v.decision.reviewer == "alice"
        assert v.width == 8 and v.mime == "image/png" and not v.disagreement
        d = v.to_dict()
        assert d["decision"]["categories"] == ["drugs"] and isinstance(d["created_at"], str)
        assert get_item(s, ids["unscored"]).prediction is None
        with pytest.raises(NotFound):
            get_item(s, 10**9)


def test_list_items_filters(engine: Engine) -> None:
    ids = _seed(engine)

    def names(**kw: object) -> set[str]:
        with unit_of_work(engine) as s:
            got = {v.item_id for v in list_items(s, **kw)}
        return {k for k, v in ids.items() if v in got}

    assert names() == set(ids)
    assert names(status="decided") == {"agree", "disagree"}
    assert names(status=["queued", "scored"]) == {"pending", "unscored"}
    assert names(source="chat") == {"pending", "unscored"}
    assert names(categories=["weapons"]) == {"disagree"}
    assert names(min_score=0.5) == {"agree", "disagree"}
    assert names(max_score=0.5) == {"pending"}
    assert names(disagreement_only=True) == {"disagree"}
    assert names(decided_categories=["drugs"]) == {"agree"}
    with unit_of_work(engine) as s:
        assert len(list_items(s, limit=2)) == 2
        assert [v.item_id for v in list_items(s, limit=1, newest_first=False)] == [ids["agree"]]
        with pytest.raises(WardenError, match="unknown status"):
            list_items(s, status="done")


def test_queue_stats(engine: Engine) -> None:
    _seed(engine)
    with unit_of_work(engine) as s:
        claim_next(s, "bob")  # the oldest open item: "pending"
        stats = queue_stats(s)
    assert stats["items"] == 4
    assert stats["by_status"]["decided"] == 2 and stats["by_status"]["in_review"] == 1
    assert stats["backlog"]["open"] == 1 and stats["backlog"]["oldest_open_age_s"] >= 0
    assert stats["decisions"]["by_category"] == {"drugs": 1, "safe": 1}
    assert stats["decisions"]["by_decision_source"] == {"moderator": 1, "label_studio": 1}
    assert stats["decisions"]["by_item_source"] == {"forum": 2}
