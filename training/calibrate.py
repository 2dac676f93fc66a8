"""Fit per-category calibration for a model version from decided items, store it, report ECE.

Raw P(Yes) from a VLM is often over- or under-confident. For each category a Platt (or
temperature) map is fitted on the model's scores against the current decisions of the same
items, measured on a held-out share (ECE before/after), then refitted on everything and stored
in `model_versions.calibration`, from where every load of that version applies it.

Run: warden models calibrate NAME [--method platt|temperature] [--model-version V]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from model.calibration import Calibration, expected_calibration_error, fit_calibration
from storage.audit import record_audit
from storage.errors import NotFound, WardenError
from storage.models import Decision, ModelVersion, Prediction
from storage.policy import Policy


@dataclass(frozen=True)
class CalibrationResult:
    name: str
    model_version: str
    method: str
    items: int
    ece_before: float
    ece_after: float
    per_category: dict[str, dict[str, Any]]


def calibration_rows(
    session: Session, model_version: str
) -> tuple[list[dict[str, float]], list[list[str]]]:
    """Raw scores of `model_version`'s latest prediction per decided item, and the decided
    categories of those items (retracted decisions excluded)."""
    latest_pred = (
        select(func.max(Prediction.id))
        .where(Prediction.model_version == model_version)
        .group_by(Prediction.item_id)
    )
    latest_dec = select(func.max(Decision.id)).group_by(Decision.item_id)
    stmt = (
        select(Prediction.scores, Prediction.signals, Decision.categories)
        .join(Decision, Decision.item_id == Prediction.item_id)
        .where(Prediction.id.in_(latest_pred.scalar_subquery()))
        .where(Decision.id.in_(latest_dec.scalar_subquery()))
        .where(Decision.action == "label")
        .order_by(Prediction.item_id)
    )
    scores: list[dict[str, float]] = []
    labels: list[list[str]] = []
    for raw_scores, signals, categories in session.execute(stmt):
        # A calibrated backend keeps the uncalibrated scores beside: fit on those.
        raw = (signals or {}).get("raw_scores") or raw_scores
        scores.append({k: float(v) for k, v in raw.items()})
        labels.append(list(categories or []))
    return scores, labels


def _ece(
    cal: Calibration | None,
    scores: list[dict[str, float]],
    labels: list[list[str]],
    categories: list[str],
) -> float:
    probs: list[float] = []
    hits: list[bool] = []
    for row, lab in zip(scores, labels, strict=True):
        mapped = cal.apply(row) if cal is not None else row
        for c in categories:
            if c in mapped:
                probs.append(mapped[c])
                hits.append(c in lab)
    return expected_calibration_error(probs, hits)


def calibrate_model(
    session: Session,
    name: str,
    policy: Policy,
    *,
    actor: str,
    method: str = "platt",
    model_version: str | None = None,
    holdout: float = 0.3,
    seed: int = 0,
    min_items: int = 20,
) -> CalibrationResult:
    """Fit, measure on a held-out share, refit on all decided items, and store on `name`."""
    row = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).first()
    if row is None:
        raise NotFound(f"no model version {name!r} (warden models list)")
    if method not in ("platt", "temperature"):
        raise WardenError("--method must be platt or temperature")
    version = model_version or name
    scores, labels = calibration_rows(session, version)
    if len(scores) < min_items:
        raise WardenError(
            f"only {len(scores)} decided items carry a prediction by {version!r}; "
            f"calibration needs at least {min_items} (score and decide more items first)"
        )
    cats = [c for c in policy.ids if any(c in s for s in scores)]
    order = list(range(len(scores)))
    random.Random(seed).shuffle(order)
    n_test = max(1, int(len(order) * holdout))
    test, train = order[:n_test], order[n_test:]
    fitted = fit_calibration(
        [scores[i] for i in train],
        [labels[i] for i in train],
        categories=cats,
        method=method,
        min_items=min_items // 2,  # type: ignore[arg-type]
    )
    test_scores, test_labels = [scores[i] for i in test], [labels[i] for i in test]
    ece_before = _ece(None, test_scores, test_labels, cats)
    ece_after = _ece(fitted, test_scores, test_labels, cats)
    final = fit_calibration(
        scores,
        labels,
        categories=cats,
        method=method,
        min_items=min_items,  # type: ignore[arg-type]
    )
    stored = final.to_dict() | {
        "model_version": version,
        "items": len(scores),
        "heldout_items": n_test,
        "ece_before": ece_before,
        "ece_after": ece_after,
        "fitted_at": datetime.now(UTC).isoformat(),
    }
    row.calibration = stored
    record_audit(
        session,
        actor,
        "model.calibrated",
        None,
        model=name,
        items=len(scores),
        ece_before=round(ece_before, 4),
        ece_after=round(ece_after, 4),
    )
    return CalibrationResult(
        name=name,
        model_version=version,
        method=method,
        items=len(scores),
        ece_before=ece_before,
        ece_after=ece_after,
        per_category=final.to_dict().get("categories", {}),
    )
