"""Export current decisions, one row per decided item, as CSV, JSON Lines or Parquet.

Each row carries the item (id, source, external id, file, blob), the current decision
(categories, decision source, reviewer, note, policy version, time, how many rows the item's
ledger has) and the latest model prediction (model version, flags, per-category scores).
Retracted decisions are not current and are not exported. The file is written to a temporary
name and renamed, so a failed export never leaves a half-written file behind.

Run: warden export decisions --format parquet --out decisions.parquet [--since 2026-01-01]
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.domain import DecisionAction
from storage.errors import WardenError
from storage.models import Decision as DecisionRow
from storage.models import Item, Prediction, User
from storage.queue import latest_decision_id, latest_prediction_id

ExportFormat = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
_BATCH = 2000


def iter_current_decisions(session: Session, since: datetime | None = None) -> Iterator[dict]:
    """One dict per item whose current decision is a label, in item id order."""
    ledger_rows = (
        select(DecisionRow.item_id, func.count().label("n"))
        .group_by(DecisionRow.item_id)
        .subquery()
    )
    stmt = (
        select(
            Item.id,
            Item.status,
            Item.source,
            Item.external_id,
            Item.filename,
            Item.blob_sha256,
            DecisionRow,
            User.username,
            ledger_rows.c.n,
        )
        .select_from(Item)
        .join(DecisionRow, DecisionRow.id == latest_decision_id(Item.id))
        .outerjoin(User, User.id == DecisionRow.reviewer_id)
        .join(ledger_rows, ledger_rows.c.item_id == Item.id)
        .where(DecisionRow.action == DecisionAction.label.value)
        .order_by(Item.id)
    )
    if since is not None:
        stmt = stmt.where(DecisionRow.created_at >= since)
    last_id = 0
    while True:
        rows = session.execute(stmt.where(Item.id > last_id).limit(_BATCH)).all()
        if not rows:
            return
        ids = [r[0] for r in rows]
        preds = {
            p.item_id: p
            for p in session.scalars(
                select(Prediction).where(
                    Prediction.item_id.in_(ids),
                    Prediction.id == latest_prediction_id(Prediction.item_id),
                )
            )
        }
        for item_id, status, source, external_id, filename, sha, d, username, n in rows:
            p = preds.get(item_id)
            yield {
                "item_id": item_id,
                "item_status": status,
                "item_source": source,
                "external_id": external_id,
                "filename": filename,
                "blob_sha256": sha,
                "categories": list(d.categories or []),
                "safe": not d.categories,
                "decision_id": d.id,
                "decision_source": d.source,
                "reviewer": username or d.reviewer_name,
                "note": d.note,
                "policy_version": d.policy_version,
                "decided_at": d.created_at.isoformat(),
                "ledger_rows": int(n),
                "model_version": p.model_version if p else None,
                "model_flagged": list(p.flagged or []) if p else None,
                "model_scores": {k: float(v) for k, v in (p.scores or {}).items()} if p else None,
            }
        last_id = ids[-1]


def export_decisions(
    session: Session, out: Path, fmt: ExportFormat | str, *, since: datetime | None = None
) -> int:
    """Write current decisions to `out`; returns the number of rows."""
    if fmt not in FORMATS:
        raise WardenError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and out.is_dir():
        raise WardenError(f"{out} is a directory; give a file name")
    if not out.parent.exists():
        raise WardenError(f"directory {out.parent} does not exist")
    rows = list(iter_current_decisions(session, since))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if fmt == "jsonl":
            _write_jsonl(tmp, rows)
        elif fmt == "csv":
            _write_csv(tmp, rows)
        else:
            _write_parquet(tmp, rows)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(rows)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _score_keys(rows: list[dict]) -> list[str]:
    return sorted({k for r in rows for k in (r["model_scores"] or {})})


def _flat(r: dict, score_keys: list[str]) -> dict[str, Any]:
    flat = {k: v for k, v in r.items() if k not in ("model_scores",)}
    flat["categories"] = "|".join(r["categories"])
    flat["model_flagged"] = None if r["model_flagged"] is None else "|".join(r["model_flagged"])
    for k in score_keys:
        flat[f"score_{k}"] = (r["model_scores"] or {}).get(k)
    return flat


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = _score_keys(rows)
    base = [
        "item_id",
        "item_status",
        "item_source",
        "external_id",
        "filename",
        "blob_sha256",
        "categories",
        "safe",
        "decision_id",
        "decision_source",
        "reviewer",
        "note",
        "policy_version",
        "decided_at",
        "ledger_rows",
        "model_version",
        "model_flagged",
    ]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=base + [f"score_{k}" for k in keys])
        w.writeheader()
        for r in rows:
            w.writerow(_flat(r, keys))


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = _score_keys(rows)
    # Lists stay lists; scores become one float column per category (NULL = not scored).
    records = []
    for r in rows:
        rec = {k: v for k, v in r.items() if k != "model_scores"}
        for k in keys:
            rec[f"score_{k}"] = (r["model_scores"] or {}).get(k)
        records.append(rec)
    schema = pa.schema(
        [
            ("item_id", pa.int64()),
            ("item_status", pa.string()),
            ("item_source", pa.string()),
            ("external_id", pa.string()),
            ("filename", pa.string()),
            ("blob_sha256", pa.string()),
            ("categories", pa.list_(pa.string())),
            ("safe", pa.bool_()),
            ("decision_id", pa.int64()),
            ("decision_source", pa.string()),
            ("reviewer", pa.string()),
            ("note", pa.string()),
            ("policy_version", pa.string()),
            ("decided_at", pa.string()),
            ("ledger_rows", pa.int64()),
            ("model_version", pa.string()),
            ("model_flagged", pa.list_(pa.string())),
        ]
        + [(f"score_{k}", pa.float64()) for k in keys]
    )
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path)
