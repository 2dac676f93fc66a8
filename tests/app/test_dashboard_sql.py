"""The dashboard's figures come from SQL aggregates: the same figures as the straightforward
computation over every row (the pandas code the dashboard ran before, kept below as the
reference) on a seeded ledger, on SQLite and PostgreSQL; and a refresh's memory does not grow
with the ledger."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bench.memory import seed_ledger
from storage import reports
from storage.db import unit_of_work
from storage.models import Blob, Decision, Item, Prediction, User
from storage.policy import Policy, load_policy
from storage.settings import DEFAULT_POLICY

POLICY = load_policy(DEFAULT_POLICY)
SAFE = "safe"

# --- the reference: every row into pandas, as the dashboard did before ----------------------


def ref_frame(session: Session, stmt, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(session.execute(stmt).all(), columns=columns)


def ref_current_decisions(session: Session) -> pd.DataFrame:
    """item_id, categories (list), source, reviewer, created_at of every current decision."""
    d = ref_frame(
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


def ref_latest_predictions(session: Session, model_version: str | None = None) -> pd.DataFrame:
    """item_id, scores (dict), flagged (list), model_version of each item's latest prediction."""
    latest = select(func.max(Prediction.id).label("pid")).group_by(Prediction.item_id)
    if model_version:
        latest = latest.where(Prediction.model_version == model_version)
    stmt = select(
        Prediction.item_id, Prediction.scores, Prediction.flagged, Prediction.model_version
    ).where(Prediction.id.in_(latest.scalar_subquery()))
    return ref_frame(session, stmt, ["item_id", "scores", "flagged", "model_version"])


def ref_volume_over_time(
    session: Session, *, days: int = 30, now: datetime | None = None
) -> pd.DataFrame:
    """Per day: items ingested and decisions recorded (all sources)."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    items = ref_frame(session, select(Item.created_at).where(Item.created_at >= since), ["at"])
    decs = ref_frame(
        session, select(Decision.created_at).where(Decision.created_at >= since), ["at"]
    )
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


def ref_decisions_by_category(session: Session, policy: Policy) -> pd.DataFrame:
    """Current decisions per category (an item with two categories counts in both), and safe."""
    cur = ref_current_decisions(session)
    counts = {c: 0 for c in [*policy.ids, SAFE]}
    for cats in cur["categories"]:
        if not cats:
            counts[SAFE] += 1
        for c in cats:
            counts[c] = counts.get(c, 0) + 1
    return pd.DataFrame({"category": list(counts), "decisions": list(counts.values())})


def ref_joined(session: Session, model_version: str | None) -> pd.DataFrame:
    preds = ref_latest_predictions(session, model_version)
    cur = ref_current_decisions(session)
    if preds.empty or cur.empty:
        return pd.DataFrame(columns=["item_id", "scores", "flagged", "categories"])
    return preds.merge(cur[["item_id", "categories"]], on="item_id", how="inner")


def ref_agreement(
    session: Session, policy: Policy, *, model_version: str | None = None
) -> pd.DataFrame:
    """Per category: confusion counts (model flag vs moderator decision), precision, recall."""
    j = ref_joined(session, model_version)
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


def ref_backlog(session: Session, *, now: datetime | None = None) -> pd.DataFrame:
    """Open items per status with the age of the oldest and the median, in hours."""
    now = now or datetime.now(UTC)
    open_statuses = ("queued", "scored", "in_review", "escalated")
    f = ref_frame(
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


def ref_throughput(
    session: Session, *, days: int = 14, now: datetime | None = None
) -> pd.DataFrame:
    """Decisions per moderator per day (moderator source only)."""
    now = now or datetime.now(UTC)
    f = ref_frame(
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


def ref_calibration(
    session: Session, policy: Policy, *, model_version: str | None = None, bins: int = 10
) -> pd.DataFrame:
    """Reliability curve pooled over categories: mean score vs observed rate per score bin."""
    j = ref_joined(session, model_version)
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


# --- the tests ------------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


def _seed(engine: Engine, decisions: int) -> None:
    """The bench's ledger (corrections, retractions, two model versions, imports, reveals,
    an open backlog) plus the odd rows: scores outside [0, 1], exactly 1.0 and missing, two
    categories at once, a category the policy no longer has."""
    seed_ledger(engine, decisions, now=NOW)
    c0, c1, c2 = POLICY.ids[:3]
    with unit_of_work(engine) as s:
        mo = s.scalar(select(User.id).where(User.username == "mo1"))
        for k, (scores, labels) in enumerate(
            [
                ({c0: 1.0, c1: -0.2, c2: 1.3}, [c0, c2]),
                ({c0: 0.0}, ["legacy_cat"]),
                ({c1: 0.999999}, []),
            ]
        ):
            at = NOW - timedelta(days=k, hours=3)
            sha = f"e{k:063x}"
            s.add(Blob(sha256=sha, size_bytes=1, mime="image/png", width=1, height=1))
            item = Item(blob_sha256=sha, status="decided", created_at=at, updated_at=at)
            s.add(item)
            s.flush()
            s.add(
                Prediction(
                    item_id=item.id, model_version="m2", policy_version="p", scores=scores,
                    flagged=[c for c, v in scores.items() if v >= 0.5], created_at=at,
                )
            )  # fmt: skip
            s.add(
                Decision(
                    item_id=item.id, categories=labels, source="moderator", reviewer_id=mo,
                    created_at=at,
                )
            )  # fmt: skip


def _same(got: pd.DataFrame, want: pd.DataFrame, **kw) -> None:
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), want.reset_index(drop=True), check_dtype=False, **kw
    )


def test_dashboard_figures_equal_the_row_by_row_computation(engine: Engine) -> None:
    _seed(engine, 600)
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == 603
        _same(reports.volume_over_time(s, now=NOW), ref_volume_over_time(s, now=NOW))
        _same(reports.decisions_by_category(s, POLICY), ref_decisions_by_category(s, POLICY))
        assert (
            reports.decisions_by_category(s, POLICY)
            .set_index("category")
            .loc["legacy_cat", "decisions"]
            == 1
        )
        _same(reports.backlog(s, now=NOW), ref_backlog(s, now=NOW), rtol=1e-12)
        _same(reports.throughput(s, now=NOW), ref_throughput(s, now=NOW))
        cur, ref_cur = reports.current_decisions(s), ref_current_decisions(s)
        _same(cur.drop(columns="created_at"), ref_cur.drop(columns="created_at"))
        for version in (None, "m1", "m2"):
            agree = reports.agreement(s, POLICY, model_version=version)
            _same(agree, ref_agreement(s, POLICY, model_version=version))
            assert agree["tp"].sum() > 0
            cal = reports.calibration(s, POLICY, model_version=version)
            _same(cal, ref_calibration(s, POLICY, model_version=version), rtol=1e-12)
            assert len(cal) >= 5


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_dashboard_refresh_does_not_load_the_ledger(engine: Engine) -> None:
    """What a refresh holds is the aggregates, not the rows: a small fraction of what loading
    every decision and prediction (the reference) holds on the same ledger."""
    _seed(engine, 4000)

    def refresh(mod) -> None:
        with unit_of_work(engine) as s:
            mod["volume_over_time"](s, now=NOW)
            mod["decisions_by_category"](s, POLICY)
            mod["agreement"](s, POLICY, model_version=None)
            mod["backlog"](s, now=NOW)
            mod["throughput"](s, now=NOW)
            mod["calibration"](s, POLICY, model_version=None)

    new = {n: getattr(reports, n) for n in ("volume_over_time", "decisions_by_category",
           "agreement", "backlog", "throughput", "calibration")}  # fmt: skip
    old = {n: globals()[f"ref_{n}"] for n in new}
    refresh(new)  # warm caches (compiled statements, imports) before measuring
    peak_new, peak_old = _peak_bytes(lambda: refresh(new)), _peak_bytes(lambda: refresh(old))
    print(f"peak traced: SQL aggregates {peak_new} B, every row {peak_old} B")
    assert peak_new * 4 < peak_old, (peak_new, peak_old)
