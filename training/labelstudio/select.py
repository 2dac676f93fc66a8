"""Which items go to Label Studio: push strategies under a budget, restricted content withheld.

Strategies (each item is taken by the first strategy that picks it):
- `disagreement`: the current (non-Label-Studio) decision's categories differ from the latest
  prediction's flags: the model or the moderator is wrong, and the label matters for training.
- `uncertainty`: the smallest distance of any category score to its threshold.
- `diversity`: round-robin over the top category (or "safe") of the latest prediction, taking
  within each group items whose perceptual hash is far (Hamming > `PHASH_CLUSTER_BITS`) from
  every item already taken, so near-duplicates do not use the budget twice.
- `audit`: a seeded random sample, `audit_pct` percent of the budget, for unbiased error rates.

Never pushed: items whose latest prediction scores a restricted category at or over half its
threshold (a margin: child-safety content is withheld on suspicion, not only on a flag), items
with any decision naming a restricted category, escalated items, and items already pushed to
the project (unless `rereview=True`).

    picked = select_items(session, policy, project_id=3, budget=200, audit_pct=10, seed=0)
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.domain import DecisionAction, DecisionSource, ItemStatus
from storage.models import Decision, Item, LabelStudioTask, Prediction
from storage.policy import Policy

STRATEGIES = ("disagreement", "uncertainty", "diversity", "audit")
RESTRICTED_MARGIN = 0.5
PHASH_CLUSTER_BITS = 10


@dataclass(frozen=True)
class Candidate:
    item_id: int
    phash: str | None
    scores: dict[str, float]
    flagged: tuple[str, ...]
    model_version: str
    decided: tuple[str, ...] | None  # current non-LS decision's categories, None if none


@dataclass(frozen=True)
class Selected:
    item_id: int
    strategy: str


def restricted_hit(policy: Policy, scores: dict[str, float], labels: Sequence[str] = ()) -> bool:
    """True when the item must never leave Warden."""
    for c in policy.categories:
        if not c.restricted:
            continue
        if c.id in labels or float(scores.get(c.id, 0.0)) >= c.threshold * RESTRICTED_MARGIN:
            return True
    return False


def _restricted_decided_items(session: Session, policy: Policy) -> set[int]:
    restricted = policy.restricted_ids
    out: set[int] = set()
    for item_id, cats in session.execute(select(Decision.item_id, Decision.categories)):
        if restricted & set(cats or []):
            out.add(int(item_id))
    return out


def load_candidates(
    session: Session, policy: Policy, *, project_id: int, rereview: bool = False
) -> list[Candidate]:
    """Scored items eligible for Label Studio (restricted ones and already-pushed ones out)."""
    latest = select(Prediction.item_id, Prediction.id).order_by(
        Prediction.item_id, Prediction.id.desc()
    )
    newest: dict[int, int] = {}
    for item_id, pid in session.execute(latest):
        newest.setdefault(int(item_id), int(pid))
    if not newest:
        return []
    withheld = _restricted_decided_items(session, policy)
    if not rereview:
        withheld |= set(
            session.scalars(
                select(LabelStudioTask.item_id).where(LabelStudioTask.project_id == project_id)
            )
        )
    # Current decision per item (newest row), ignoring Label Studio's own decisions.
    current: dict[int, tuple[str, ...] | None] = {}
    for item_id, action, cats, source in session.execute(
        select(Decision.item_id, Decision.action, Decision.categories, Decision.source).order_by(
            Decision.item_id, Decision.id.desc()
        )
    ):
        if int(item_id) in current:
            continue
        live = action == DecisionAction.label.value and source != DecisionSource.label_studio
        current[int(item_id)] = tuple(cats or []) if live else None
    rows = session.execute(
        select(Item.id, Item.phash, Item.status, Prediction)
        .join(Prediction, Prediction.item_id == Item.id)
        .where(Prediction.id.in_(list(newest.values())))
        .order_by(Item.id)
    )
    out: list[Candidate] = []
    for item_id, phash, status, pred in rows:
        if item_id in withheld or status == ItemStatus.escalated.value:
            continue
        scores = {k: float(v) for k, v in (pred.scores or {}).items()}
        if restricted_hit(policy, scores, pred.flagged or []):
            continue
        out.append(
            Candidate(
                item_id=int(item_id),
                phash=phash,
                scores=scores,
                flagged=tuple(pred.flagged or []),
                model_version=pred.model_version,
                decided=current.get(int(item_id)),
            )
        )
    return out


def _uncertainty(policy: Policy, c: Candidate) -> float:
    return min(
        (abs(c.scores.get(cat.id, 0.0) - cat.threshold) for cat in policy.categories),
        default=1.0,
    )


def _top_category(policy: Policy, c: Candidate) -> str:
    best = max(
        (cat for cat in policy.categories if not cat.restricted),
        key=lambda cat: c.scores.get(cat.id, 0.0) - cat.threshold,
        default=None,
    )
    if best is None or c.scores.get(best.id, 0.0) < best.threshold:
        return "safe"
    return best.id


def _hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def _diverse(
    policy: Policy, pool: list[Candidate], n: int, taken: list[Candidate]
) -> list[Candidate]:
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for c in sorted(pool, key=lambda c: _uncertainty(policy, c)):
        groups[_top_category(policy, c)].append(c)
    hashes = [c.phash for c in taken if c.phash]
    out: list[Candidate] = []
    while len(out) < n and any(groups.values()):
        for key in sorted(groups):
            bucket = groups[key]
            while bucket:
                c = bucket.pop(0)
                if c.phash and any(_hamming(c.phash, h) <= PHASH_CLUSTER_BITS for h in hashes):
                    continue  # a near-duplicate of something already going out
                out.append(c)
                if c.phash:
                    hashes.append(c.phash)
                break
            if len(out) >= n:
                break
    return out


def select_items(
    session: Session,
    policy: Policy,
    *,
    project_id: int,
    budget: int,
    strategies: Sequence[str] = STRATEGIES,
    audit_pct: float = 10.0,
    rereview: bool = False,
    seed: int | None = None,
) -> list[Selected]:
    """Pick up to `budget` items; the audit share is `audit_pct` percent of the budget and the
    rest is split evenly between the other strategies, unused quota flowing to the next."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}")
    if budget <= 0:
        return []
    pool = load_candidates(session, policy, project_id=project_id, rereview=rereview)
    rng = random.Random(seed)
    audit_n = math.ceil(budget * audit_pct / 100.0) if "audit" in strategies else 0
    others = [s for s in strategies if s != "audit"]
    remaining = budget - audit_n
    picked: list[Selected] = []
    taken: list[Candidate] = []
    left = {c.item_id: c for c in pool}

    def take(cands: list[Candidate], strategy: str) -> None:
        for c in cands:
            if c.item_id in left:
                del left[c.item_id]
                picked.append(Selected(c.item_id, strategy))
                taken.append(c)

    # Audit first, from the whole pool, so the sample stays unbiased by the other strategies.
    if audit_n:
        take(rng.sample(list(left.values()), min(audit_n, len(left))), "audit")
    for i, strategy in enumerate(others):
        quota = math.ceil(remaining / (len(others) - i)) if others else 0
        rest = list(left.values())
        if strategy == "disagreement":
            chosen = [
                c for c in rest if c.decided is not None and set(c.decided) != set(c.flagged)
            ][:quota]
        elif strategy == "uncertainty":
            chosen = sorted(rest, key=lambda c: (_uncertainty(policy, c), c.item_id))[:quota]
        else:
            chosen = _diverse(policy, rest, quota, taken)
        take(chosen, strategy)
        remaining -= len(chosen)
    return picked[:budget]
