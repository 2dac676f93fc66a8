"""Dashboard aggregates as pandas DataFrames: volume, decisions, model-vs-moderator agreement,
per-category precision/recall, backlog and age, moderator throughput and exposure, calibration.

Plain functions over a `Session`; the UI turns the frames into plotly figures, tests and
notebooks read them directly. "Current decision" = the newest label decision of an item that
nothing supersedes (a retraction leaves the item undecided).

    with unit_of_work(engine) as s:
        print(reports.agreement(s, policy, model_version=None))
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import AuditEvent, Decision, Item, Prediction, User
from storage.policy import Policy

SAFE = "safe"


def _frame(session: Session, stmt, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(session.execute(stmt).all(), columns=columns)


def current_decisions(session: Session) -> pd.DataFrame:
    """item_id, categories (list), source, reviewer, created_at of every current decision."""
    d = _frame(
        session,
        select(
            Decision.id,
            Decision.item_id,
            Decision.action,
            Decision.categories,
            Decision.source,
            Decision.reviewer_id,
            Decision.reviewer_name,
            Decision.supersedes_id,
            Decision.created_at,
        ),
        [
            "id",
            "item_id",
            "action",
            "categories",
            "source",
            "reviewer_id",
            "reviewer_name",
            "supersedes_id",
            "created_at",
        ],
    )
    cols = ["item_id", "categories", "source", "reviewer", "created_at"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    superseded = set(d["supersedes_id"].dropna().astype(int))
    heads = d[~d["id"].isin(superseded)].sort_values("id").drop_duplicates("item_id", keep="last")
    heads = heads[heads["action"] == "label"].copy()
    names = dict(session.execute(select(User.id, User.username)).all())
    heads["reviewer"] = [
        names.get(int(r)) if pd.notna(r) else n
        for r, n in zip(heads["reviewer_id"], heads["reviewer_name"], strict=True)
    ]
    heads["categories"] = heads["categories"].map(lambda c: list(c or []))
    return heads[cols].reset_index(drop=True)


def model_versions(session: Session) -> list[str]:
    """Model versions that have predictions, newest first."""
    rows = session.execute(
        select(Prediction.model_version, func.max(Prediction.id).label("last"))
        .group_by(Prediction.model_version)
        .order_by(func.max(Prediction.id).desc())
    ).all()
    return [r[0] for r in rows]


def latest_predictions(session: Session, model_version: str | None = None) -> pd.DataFrame:
    """item_id, scores (dict), flagged (list), model_version of each item's latest prediction."""
    latest = select(func.max(Prediction.id).label("pid")).group_by(Prediction.item_id)
    if model_version:
        latest = latest.where(Prediction.model_version == model_version)
    stmt = select(
        Prediction.item_id, Prediction.scores, Prediction.flagged, Prediction.model_version
    ).where(Prediction.id.in_(latest.scalar_subquery()))
    return _frame(session, stmt, ["item_id", "scores", "flagged", "model_version"])


def volume_over_time(
    session: Session, *, days: int = 30, now: datetime | None = None
) -> pd.DataFrame:
    """Per day: items ingested and decisions recorded (all sources)."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    items = _frame(session, select(Item.created_at).where(Item.created_at >= since), ["at"])
    decs = _frame(session, select(Decision.created_at).where(Decision.created_at >= since), ["at"])
    index = pd.date_range(since.date(), now.date(), freq="D")
    out = pd.DataFrame({"day": index.date})
    for name, frame in (("items", items), ("decisions", decs)):
        counts = (
            pd.to_datetime(frame["at"], utc=True).dt.date.value_counts()
            if not frame.empty
            else pd.Series(dtype=int)
        )
        out[name] = [int(counts.get(d, 0)) for d in out["day"]]
    return out


def decisions_by_category(session: Session, policy: Policy) -> pd.DataFrame:
    """Current decisions per category (an item with two categories counts in both), and safe."""
    cur = current_decisions(session)
    counts = {c: 0 for c in [*policy.ids, SAFE]}
    for cats in cur["categories"]:
        if not cats:
            counts[SAFE] += 1
        for c in cats:
            counts[c] = counts.get(c, 0) + 1
    return pd.DataFrame({"category": list(counts), "decisions": list(counts.values())})


def _joined(session: Session, model_version: str | None) -> pd.DataFrame:
    preds = latest_predictions(session, model_version)
    cur = current_decisions(session)
    if preds.empty or cur.empty:
        return pd.DataFrame(columns=["item_id", "scores", "flagged", "categories"])
    return preds.merge(cur[["item_id", "categories"]], on="item_id", how="inner")


def agreement(
    session: Session, policy: Policy, *, model_version: str | None = None
) -> pd.DataFrame:
    """Per category: confusion counts (model flag vs moderator decision), precision, recall."""
    j = _joined(session, model_version)
    rows = []
    for c in policy.ids:
        model = np.array([c in (f or []) for f in j["flagged"]], dtype=bool)
        human = np.array([c in (d or []) for d in j["categories"]], dtype=bool)
        tp = int((model & human).sum())
        fp = int((model & ~human).sum())
        fn = int((~model & human).sum())
        tn = int((~model & ~human).sum())
        rows.append(
            {
                "category": c,
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "tn": tn,
                "precision": tp / (tp + fp) if tp + fp else np.nan,
                "recall": tp / (tp + fn) if tp + fn else np.nan,
                "agreement": (tp + tn) / len(j) if len(j) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def backlog(session: Session, *, now: datetime | None = None) -> pd.DataFrame:
    """Open items per status with the age of the oldest and the median, in hours."""
    now = now or datetime.now(UTC)
    open_statuses = ("queued", "scored", "in_review", "escalated")
    f = _frame(
        session,
        select(Item.status, Item.created_at).where(Item.status.in_(open_statuses)),
        ["status", "created_at"],
    )
    rows = []
    for st in open_statuses:
        sub = f[f["status"] == st]
        ages = (now - pd.to_datetime(sub["created_at"], utc=True)).dt.total_seconds() / 3600
        rows.append(
            {
                "status": st,
                "items": len(sub),
                "oldest_h": float(ages.max()) if len(sub) else 0.0,
                "median_h": float(ages.median()) if len(sub) else 0.0,
            }
        )
    return pd.DataFrame(rows)


def throughput(session: Session, *, days: int = 14, now: datetime | None = None) -> pd.DataFrame:
    """Decisions per moderator per day (moderator source only)."""
    now = now or datetime.now(UTC)
    f = _frame(
        session,
        select(User.username, Decision.created_at)
        .join(User, User.id == Decision.reviewer_id)
        .where(Decision.source == "moderator", Decision.created_at >= now - timedelta(days=days)),
        ["reviewer", "at"],
    )
    if f.empty:
        return pd.DataFrame(columns=["reviewer", "day", "decisions"])
    f["day"] = pd.to_datetime(f["at"], utc=True).dt.date
    return f.groupby(["reviewer", "day"]).size().reset_index(name="decisions")


def exposure(session: Session, *, days: int = 30, now: datetime | None = None) -> pd.DataFrame:
    """Per moderator: reveals of blurred images and decisions over the window."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    reveals = dict(
        session.execute(
            select(AuditEvent.actor, func.count(AuditEvent.id))
            .where(AuditEvent.action == "reveal", AuditEvent.at >= since)
            .group_by(AuditEvent.actor)
        ).all()
    )
    decided = dict(
        session.execute(
            select(User.username, func.count(Decision.id))
            .join(User, User.id == Decision.reviewer_id)
            .where(Decision.source == "moderator", Decision.created_at >= since)
            .group_by(User.username)
        ).all()
    )
    names = sorted(set(reveals) | set(decided))
    return pd.DataFrame(
        {
            "reviewer": names,
            "reveals": [int(reveals.get(n, 0)) for n in names],
            "decisions": [int(decided.get(n, 0)) for n in names],
        }
    )


def calibration(
    session: Session, policy: Policy, *, model_version: str | None = None, bins: int = 10
) -> pd.DataFrame:
    """Reliability curve pooled over categories: mean score vs observed rate per score bin."""
    j = _joined(session, model_version)
    scores: list[float] = []
    truth: list[bool] = []
    for s, d in zip(j["scores"], j["categories"], strict=True):
        for c in policy.ids:
            if s and c in s:
                scores.append(float(s[c]))
                truth.append(c in (d or []))
    cols = ["bin", "mean_score", "observed", "count"]
    if not scores:
        return pd.DataFrame(columns=cols)
    sc = np.clip(np.array(scores), 0, 1)
    tr = np.array(truth, dtype=float)
    idx = np.minimum((sc * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        m = idx == b
        if m.any():
            rows.append(
                {
                    "bin": (b + 0.5) / bins,
                    "mean_score": float(sc[m].mean()),
                    "observed": float(tr[m].mean()),
                    "count": int(m.sum()),
                }
            )
    return pd.DataFrame(rows, columns=cols)


def expected_calibration_error(cal: pd.DataFrame) -> float:
    if cal.empty:
        return float("nan")
    w = cal["count"] / cal["count"].sum()
    return float((w * (cal["mean_score"] - cal["observed"]).abs()).sum())
