"""Dashboard aggregates as pandas DataFrames: volume, decisions, model-vs-moderator agreement,
per-category precision/recall, backlog and age, moderator throughput and exposure, calibration.

Plain functions over a `Session`; the UI turns the frames into plotly figures, tests and
notebooks read them directly. "Current decision" = the newest label decision of an item that
nothing supersedes (a retraction leaves the item undecided).

The aggregates are computed in SQL (GROUP BY day, status, reviewer, label set, score bin), so a
dashboard refresh fetches a few hundred rows whatever the size of the ledger, on SQLite and
PostgreSQL alike. Label and flag sets are JSON lists: they are grouped by their JSON text and
counted per category here (there are few distinct sets).

    with unit_of_work(engine) as s:
        print(reports.agreement(s, policy, model_version=None))
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Float, Integer, Select, Text, case, cast, func, select
from sqlalchemy.orm import Session

from storage.models import AuditEvent, Decision, Item, Prediction, User
from storage.policy import Policy

SAFE = "safe"
OPEN_STATUSES = ("queued", "scored", "in_review", "escalated")


def _frame(session: Session, stmt, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(session.execute(stmt).all(), columns=columns)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _utc_day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as SQL."""
    if _dialect(session) == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite keeps naive UTC text: its date part


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _labels(text: str | None) -> list[str]:
    """A JSON list column read as text (NULL and JSON null are the empty list)."""
    return list(json.loads(text) or []) if text is not None else []


def _heads():
    """(item_id, id) of every item's current decision: its newest decision nothing supersedes
    (a retraction or an ignore is current too; callers keep the label ones). A grouped
    subquery, so both databases compute it once and join on primary keys."""
    superseded = select(Decision.supersedes_id).where(Decision.supersedes_id.is_not(None))
    return (
        select(Decision.item_id, func.max(Decision.id).label("id"))
        .where(Decision.id.not_in(superseded))
        .group_by(Decision.item_id)
        .subquery("heads")
    )


def _current_labels(*columns: Any) -> Select:
    """SELECT `columns` over the current label decisions (`Decision` is the current one)."""
    heads = _heads()
    return (
        select(*columns)
        .select_from(heads)
        .join(Decision, Decision.id == heads.c.id)
        .where(Decision.action == "label")
    )


def _judged(model_version: str | None, *columns: Any) -> Select:
    """SELECT `columns` over the items with a current label decision (`Decision`) and a latest
    prediction (`Prediction`, of that model version when given)."""
    latest = select(Prediction.item_id, func.max(Prediction.id).label("id"))
    if model_version:
        latest = latest.where(Prediction.model_version == model_version)
    latest_sq = latest.group_by(Prediction.item_id).subquery("latest")
    heads = _heads()
    return (
        select(*columns)
        .select_from(heads)
        .join(Decision, Decision.id == heads.c.id)
        .join(latest_sq, latest_sq.c.item_id == heads.c.item_id)
        .join(Prediction, Prediction.id == latest_sq.c.id)
        .where(Decision.action == "label")
    )


def current_decisions(session: Session) -> pd.DataFrame:
    """item_id, categories (list), source, reviewer, created_at of every current decision.

    One row per decided item: for notebooks; the dashboard itself uses the aggregates below.
    """
    rows = session.execute(
        _current_labels(
            Decision.item_id,
            Decision.categories,
            Decision.source,
            func.coalesce(User.username, Decision.reviewer_name),
            Decision.created_at,
        )
        .outerjoin(User, User.id == Decision.reviewer_id)
        .order_by(Decision.id)
    ).all()
    cols = ["item_id", "categories", "source", "reviewer", "created_at"]
    return pd.DataFrame(
        [(i, list(c or []), src, who, at) for i, c, src, who, at in rows], columns=cols
    )


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
    out = pd.DataFrame({"day": pd.date_range(since.date(), now.date(), freq="D").date})
    for name, column in (("items", Item.created_at), ("decisions", Decision.created_at)):
        day = _utc_day(session, column).label("day")
        counts = {
            _as_date(d): int(n)
            for d, n in session.execute(
                select(day, func.count()).where(column >= since).group_by(day)
            )
        }
        out[name] = [counts.get(d, 0) for d in out["day"]]
    return out


def decisions_by_category(session: Session, policy: Policy) -> pd.DataFrame:
    """Current decisions per category (an item with two categories counts in both), and safe."""
    labels = cast(Decision.categories, Text)
    counts = {c: 0 for c in [*policy.ids, SAFE]}
    sets = session.execute(_current_labels(labels, func.count()).group_by(labels))
    for text, n in sets:
        cats = _labels(text)
        if not cats:
            counts[SAFE] += n
        for c in cats:
            counts[c] = counts.get(c, 0) + n
    return pd.DataFrame({"category": list(counts), "decisions": list(counts.values())})


def agreement(
    session: Session, policy: Policy, *, model_version: str | None = None
) -> pd.DataFrame:
    """Per category: confusion counts (model flag vs moderator decision), precision, recall."""
    flagged, labels = cast(Prediction.flagged, Text), cast(Decision.categories, Text)
    pairs = session.execute(
        _judged(model_version, flagged, labels, func.count()).group_by(flagged, labels)
    ).all()
    total = sum(n for _, _, n in pairs)
    rows = []
    for c in policy.ids:
        cells: Counter[tuple[bool, bool]] = Counter()
        for f, d, n in pairs:
            cells[(c in _labels(f), c in _labels(d))] += n
        tp, fp = cells[(True, True)], cells[(True, False)]
        fn, tn = cells[(False, True)], cells[(False, False)]
        rows.append(
            {
                "category": c,
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "tn": tn,
                "precision": tp / (tp + fp) if tp + fp else np.nan,
                "recall": tp / (tp + fn) if tp + fn else np.nan,
                "agreement": (tp + tn) / total if total else np.nan,
            }
        )
    return pd.DataFrame(rows)


def backlog(session: Session, *, now: datetime | None = None) -> pd.DataFrame:
    """Open items per status with the age of the oldest and the median, in hours."""
    now = now or datetime.now(UTC)

    def hours(at: datetime) -> float:
        return (now - at).total_seconds() / 3600

    counts = dict(
        session.execute(
            select(Item.status, func.count())
            .where(Item.status.in_(OPEN_STATUSES))
            .group_by(Item.status)
        ).all()
    )
    rows = []
    for st in OPEN_STATUSES:
        n = int(counts.get(st, 0))
        oldest = median = 0.0
        if n:
            ordered = select(Item.created_at).where(Item.status == st).order_by(Item.created_at)
            oldest = hours(session.scalars(ordered.limit(1)).one())
            # The middle one or two: an even count's median is the mean of the two.
            middle = session.scalars(ordered.offset((n - 1) // 2).limit(2 - n % 2)).all()
            median = float(np.median([hours(at) for at in middle]))
        rows.append({"status": st, "items": n, "oldest_h": oldest, "median_h": median})
    return pd.DataFrame(rows)


def throughput(session: Session, *, days: int = 14, now: datetime | None = None) -> pd.DataFrame:
    """Decisions per moderator per day (moderator source only)."""
    now = now or datetime.now(UTC)
    day = _utc_day(session, Decision.created_at).label("day")
    rows = session.execute(
        select(User.username, day, func.count())
        .join(User, User.id == Decision.reviewer_id)
        .where(Decision.source == "moderator", Decision.created_at >= now - timedelta(days=days))
        .group_by(User.username, day)
        .order_by(User.username, day)
    ).all()
    return pd.DataFrame(
        [(who, _as_date(d), int(n)) for who, d, n in rows],
        columns=["reviewer", "day", "decisions"],
    )


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


def accept_rate(session: Session, *, days: int = 30, now: datetime | None = None) -> pd.DataFrame:
    """Per reviewer over the window: decisions, how many took the model's suggestion with the
    accept key (decision meta `accepted_model_suggestion`), and the share (0..1)."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    accepted = Decision.meta["accepted_model_suggestion"].as_boolean()
    rows = session.execute(
        select(
            User.username,
            func.count(Decision.id),
            func.sum(case((accepted.is_(True), 1), else_=0)),
        )
        .join(User, User.id == Decision.reviewer_id)
        .where(Decision.action == "label", Decision.created_at >= since)
        .group_by(User.username)
        .order_by(User.username)
    ).all()
    decided = [int(n) for _, n, _ in rows]
    took = [int(a or 0) for _, _, a in rows]
    return pd.DataFrame(
        {
            "reviewer": [r[0] for r in rows],
            "decisions": decided,
            "accepted": took,
            "accept_rate": [a / n if n else 0.0 for a, n in zip(took, decided, strict=True)],
        }
    )


def calibration(
    session: Session, policy: Policy, *, model_version: str | None = None, bins: int = 10
) -> pd.DataFrame:
    """Reliability curve pooled over categories: mean score vs observed rate per score bin."""
    labels = cast(Decision.categories, Text)
    count: Counter[int] = Counter()
    score_sum: defaultdict[int, float] = defaultdict(float)
    positives: Counter[int] = Counter()
    for c in policy.ids:
        raw = Prediction.scores[c].as_float()
        score = case((raw < 0, 0.0), (raw > 1, 1.0), else_=raw)
        scaled = score * bins
        if _dialect(session) == "postgresql":  # its CAST rounds; the bins truncate
            scaled = func.floor(scaled)
        idx = cast(scaled, Integer)  # score 1.0 lands in bin `bins`: folded into the last below
        stmt = (
            _judged(model_version, idx, labels, func.count(), func.sum(cast(score, Float)))
            .where(raw.is_not(None))
            .group_by(idx, labels)
        )
        for b, text, n, total in session.execute(stmt):
            b = min(int(b), bins - 1)
            count[b] += n
            score_sum[b] += float(total)
            positives[b] += n if c in _labels(text) else 0
    cols = ["bin", "mean_score", "observed", "count"]
    rows = [
        {
            "bin": (b + 0.5) / bins,
            "mean_score": score_sum[b] / count[b],
            "observed": positives[b] / count[b],
            "count": count[b],
        }
        for b in range(bins)
        if count[b]
    ]
    return pd.DataFrame(rows, columns=cols)


def expected_calibration_error(cal: pd.DataFrame) -> float:
    if cal.empty:
        return float("nan")
    w = cal["count"] / cal["count"].sum()
    return float((w * (cal["mean_score"] - cal["observed"]).abs()).sum())
