"""Inter-annotator agreement per category from Label Studio decisions (pure numpy).

With overlap (project `maximum_annotations` > 1) an item gets several annotations, each its
own decision. Per category, every annotation is a binary rating (category chosen or not).
Exactly two ratings on every item: Cohen's kappa (first vs second annotation). Otherwise
Fleiss' kappa over items with at least two ratings, in its form for a varying number of
raters per item. A category no rater ever chose (or always chose) has no defined kappa and
is left out. The training package uses this to weigh or resolve conflicting labels.

    kappas = category_agreement(session, project_id=3)   # {"weapons": 0.81, ...}
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.domain import DecisionAction, DecisionSource
from storage.models import Decision


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary raters; a, b: [N] of 0/1."""
    a = a.astype(float)
    b = b.astype(float)
    po = float(np.mean(a == b))
    pa, pb = a.mean(), b.mean()
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0:
        return float("nan")
    return (po - pe) / (1 - pe)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa; counts: [N items, K classes] of how many raters chose each class
    (rows may sum to different n_i >= 2)."""
    counts = counts.astype(float)
    n = counts.sum(axis=1)  # [N]
    keep = n >= 2
    counts, n = counts[keep], n[keep]
    if len(n) == 0:
        return float("nan")
    p_i = ((counts * (counts - 1)).sum(axis=1)) / (n * (n - 1))  # [N]
    p_bar = p_i.mean()
    p_j = counts.sum(axis=0) / n.sum()  # [K]
    pe = float((p_j**2).sum())
    if pe >= 1.0:
        return float("nan")
    return float((p_bar - pe) / (1 - pe))


def annotation_labels(session: Session, project_id: int | None = None) -> dict[int, list[set[str]]]:
    """item id -> the current label set of each live annotation (latest version, not deleted)."""
    prefix = "ls:" if project_id is None else f"ls:{int(project_id)}:"
    latest: dict[tuple[str, str], Decision] = {}
    for d in session.scalars(
        select(Decision)
        .where(
            Decision.source == DecisionSource.label_studio.value,
            Decision.external_ref.like(prefix + "%"),
        )
        .order_by(Decision.id)
    ):
        _, project, ann, _ = d.external_ref.split(":", 3)
        latest[(project, ann)] = d
    out: dict[int, list[set[str]]] = defaultdict(list)
    for d in latest.values():
        if d.action == DecisionAction.label.value:
            out[d.item_id].append(set(d.categories or []))
    return dict(out)


def category_agreement(
    session: Session, *, project_id: int | None = None, categories: list[str] | None = None
) -> dict[str, float]:
    """Kappa per category over items annotated at least twice; see the module docstring."""
    per_item = {i: r for i, r in annotation_labels(session, project_id).items() if len(r) >= 2}
    if not per_item:
        return {}
    cats = categories or sorted({c for ratings in per_item.values() for s in ratings for c in s})
    two_raters = all(len(r) == 2 for r in per_item.values())
    out: dict[str, float] = {}
    for cat in cats:
        if two_raters:
            a = np.array([cat in r[0] for r in per_item.values()])
            b = np.array([cat in r[1] for r in per_item.values()])
            k = cohen_kappa(a, b)
        else:
            yes = np.array([sum(cat in s for s in r) for r in per_item.values()])
            total = np.array([len(r) for r in per_item.values()])
            k = fleiss_kappa(np.stack([yes, total - yes], axis=1))
        if not np.isnan(k):
            out[cat] = round(float(k), 4)
    return out
