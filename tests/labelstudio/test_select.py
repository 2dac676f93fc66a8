"""Push selection: restricted content never leaves Warden; strategies fill the budget."""

from __future__ import annotations

from sqlalchemy import Engine

from storage.db import unit_of_work
from storage.decisions import record_decision
from storage.policy import Policy
from tests.labelstudio.conftest import MakeItems
from training.labelstudio.project import label_config
from training.labelstudio.select import select_items
from training.labelstudio.sync import enqueue_push


def test_restricted_items_are_never_selected_and_nothing_twice(
    engine: Engine, make_items: MakeItems, policy: Policy
) -> None:
    flagged_cs, suspicious_cs, decided_cs, normal = make_items(
        [
            {"child_safety": 0.9},
            {"child_safety": 0.2, "weapons": 0.5},
            {"weapons": 0.5},
            {"weapons": 0.49},
        ]
    )
    with unit_of_work(engine) as s:
        record_decision(
            s,
            item_id=decided_cs,
            categories=["child_safety"],
            source="moderator",
            reviewer="mod",
            policy=policy,
        )
    with unit_of_work(engine) as s:
        picked = select_items(s, policy, project_id=1, budget=10, seed=0)
        assert [p.item_id for p in picked] == [normal]
        enqueue_push(s, 1, picked)
    with unit_of_work(engine) as s:
        assert select_items(s, policy, project_id=1, budget=10, seed=0) == []
        again = select_items(s, policy, project_id=1, budget=10, seed=0, rereview=True)
        assert [p.item_id for p in again] == [normal]
        # Another project is a different review: the item may go there.
        assert len(select_items(s, policy, project_id=2, budget=10, seed=0)) == 1


def test_strategies_share_the_budget(engine: Engine, make_items: MakeItems, policy: Policy) -> None:
    near = make_items([{"drugs": 0.5 + d} for d in (0.001, 0.002, 0.003)])
    far = make_items([{"drugs": 0.99}] * 6 + [{"weapons": 0.99}] * 3 + [{}] * 6)
    disputed = make_items([{"scam_fraud": 0.95}])
    with unit_of_work(engine) as s:
        record_decision(
            s, item_id=disputed[0], categories=[], source="moderator", reviewer="mod", policy=policy
        )
    with unit_of_work(engine) as s:
        picked = select_items(s, policy, project_id=1, budget=8, audit_pct=25, seed=1)
    by = {}
    for p in picked:
        by.setdefault(p.strategy, []).append(p.item_id)
    assert len(picked) == 8 and len({p.item_id for p in picked}) == 8
    assert len(by["audit"]) == 2
    assert by.get("disagreement") == disputed or disputed[0] in by["audit"]
    assert set(near) <= set(by["uncertainty"]) | set(by["audit"])
    # Diversity spreads over top categories instead of taking six "drugs" items.
    div_items = set(by["diversity"])
    assert len(div_items) >= 1 and not div_items <= set(far[:6])


def test_label_config_leaves_out_restricted_categories(policy: Policy) -> None:
    xml = label_config(policy, regions=True)
    assert "child_safety" not in xml
    assert xml.count("<Choice ") == len(policy.ids) - 1 + 1  # minus restricted, plus safe
    assert '<RectangleLabels name="regions"' in xml and 'choice="multiple"' in xml
    assert "RectangleLabels" not in label_config(policy, regions=False)
