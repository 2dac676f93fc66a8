"""Queue round-trip latency: claim the next item, then decide it, with 100,000 items stored.

One reviewer loop, each step its own unit of work (as in the UI): `claim_next` then
`record_decision(require_lease=True)`. Reports p50/p95/p99 of the claim, the decision and the
round trip on SQLite (WAL file under a temp dir) and PostgreSQL (a fresh database at
127.0.0.1, dropped afterwards), plus the bulk-insert rate used to seed the backlog.

Run: .venv/bin/python bench/queue_latency.py [--items 100000] [--rounds 1000]
     [--backends sqlite,postgres] [--results PATH]
Writes bench/results/queue.json (or --results: a .json file or a folder) with its provenance
(bench/provenance.py) and prints a table. Scratch: a temp dir (TMPDIR), removed afterwards.
"""

# ruff: noqa: E402  (sys.path must be fixed before the imports below)
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import provenance
from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.migrate import upgrade
from storage.models import Blob, Item, Prediction
from storage.policy import load_policy
from storage.queue import claim_next
from storage.scratch_db import DEFAULT_ADMIN_URL, create_scratch_database, drop_scratch_database
from storage.settings import DEFAULT_POLICY

RESULTS_NAME = "queue.json"
PG_ADMIN_URL = os.environ.get("WARDEN_BENCH_PG_URL", DEFAULT_ADMIN_URL)
CATEGORIES = ["sexual", "violence_gore", "weapons", "drugs", "scam_fraud", "illegal_ads"]


def seed(engine: Engine, n: int, *, chunk: int = 5000) -> float:
    """Insert n scored items (blob + item + prediction rows) with multi-row Core inserts;
    returns items per second."""
    t0 = time.perf_counter()
    base = datetime.now(UTC) - timedelta(days=1)
    next_id = 1
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        blobs, items, preds = [], [], []
        for j in range(size):
            i = start + j
            sha = f"{i:064x}"
            created = base + timedelta(milliseconds=i)
            blobs.append(
                {
                    "sha256": sha,
                    "size_bytes": 1000,
                    "mime": "image/png",
                    "width": 64,
                    "height": 64,
                    "created_at": created,
                }
            )
            # A few high-priority items (hash-bank matches, NSFW) among many ordinary ones.
            items.append(
                {
                    "id": next_id + j,
                    "blob_sha256": sha,
                    "status": "scored",
                    "priority": 100 if i % 997 == 0 else 0,
                    "source": f"src{i % 7}",
                    "animated": False,
                    "meta": {},
                    "created_at": created,
                    "updated_at": created,
                }
            )
            scores = {c: ((i * 31 + k * 17) % 100) / 100 for k, c in enumerate(CATEGORIES)}
            preds.append(
                {
                    "item_id": next_id + j,
                    "model_version": "bench",
                    "policy_version": "bench",
                    "scores": scores,
                    "flagged": [c for c, v in scores.items() if v >= 0.5],
                    "signals": {},
                    "latency_ms": 0.0,
                    "created_at": created,
                }
            )
        with unit_of_work(engine) as s:
            s.execute(insert(Blob.__table__), blobs)
            s.execute(insert(Item.__table__), items)
            s.execute(insert(Prediction.__table__), preds)
        next_id += size
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("COMMIT"))
            conn.execute(text("ANALYZE"))
    return n / (time.perf_counter() - t0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_backend(url: str, n_items: int, rounds: int, warmup: int = 50) -> dict:
    upgrade(url)
    engine = make_engine(url)
    policy = load_policy(DEFAULT_POLICY)
    try:
        rate = seed(engine, n_items)
        claim_ms, decide_ms, total_ms = [], [], []
        for r in range(warmup + rounds):
            t0 = time.perf_counter()
            with unit_of_work(engine) as s:
                claimed = claim_next(s, "bench")
            t1 = time.perf_counter()
            if claimed is None:
                raise RuntimeError("queue ran dry; seed more items than rounds")
            with unit_of_work(engine) as s:
                record_decision(
                    s,
                    item_id=claimed.item_id,
                    categories=["weapons"] if r % 4 == 0 else [],
                    source="moderator",
                    reviewer="bench",
                    policy=policy,
                    require_lease=True,
                )
            t2 = time.perf_counter()
            if r >= warmup:
                claim_ms.append((t1 - t0) * 1000)
                decide_ms.append((t2 - t1) * 1000)
                total_ms.append((t2 - t0) * 1000)
    finally:
        engine.dispose()

    def summary(v: list[float]) -> dict:
        return {
            "p50": pct(v, 0.5),
            "p95": pct(v, 0.95),
            "p99": pct(v, 0.99),
            "mean": statistics.fmean(v),
        }

    return {
        "items": n_items,
        "rounds": rounds,
        "seed_items_per_s": rate,
        "claim_ms": summary(claim_ms),
        "decide_ms": summary(decide_ms),
        "round_trip_ms": summary(total_ms),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument(
        "--results",
        "--out",
        dest="results",
        default=None,
        help=f"Results .json file or folder (default: bench/results/{RESULTS_NAME}).",
    )
    args = ap.parse_args(argv)
    backends = args.backends.split(",")
    unknown = [b for b in backends if b not in ("sqlite", "postgres")]
    if unknown:
        ap.error(f"unknown backend {unknown[0]!r} (choose from sqlite, postgres)")
    if args.items <= args.rounds + 50:
        ap.error(f"--items ({args.items}) must exceed --rounds + 50 warm-up ({args.rounds + 50})")
    out = provenance.results_or_exit(ap, args.results, RESULTS_NAME)
    prov = provenance.start(__file__, argv)
    results: dict = {
        "bench": "queue claim+decide round trip",
        "hardware": prov.summary,
        "when": prov.record["started_at"],
        "backends": {},
    }
    for backend in backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                results["backends"]["sqlite"] = run_backend(
                    f"sqlite:///{tmp}/bench.db", args.items, args.rounds
                )
        elif backend == "postgres":
            url = create_scratch_database(PG_ADMIN_URL, prefix="warden_bench")
            try:
                results["backends"]["postgres"] = run_backend(url, args.items, args.rounds)
            finally:
                drop_scratch_database(PG_ADMIN_URL, url)
    b = results["backends"]
    if "sqlite" in b and "postgres" in b:
        results["ratio_p95_postgres_over_sqlite"] = (
            b["postgres"]["round_trip_ms"]["p95"] / b["sqlite"]["round_trip_ms"]["p95"]
        )
    provenance.write_results(out, results, prov)
    print(f"queue round trip, {args.items:,} items, {args.rounds} rounds; {results['hardware']}")
    print(f"{'backend':<10} {'step':<11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  seed items/s")
    for name, r in b.items():
        for step in ("claim_ms", "decide_ms", "round_trip_ms"):
            s = r[step]
            seed_rate = f"{r['seed_items_per_s']:,.0f}" if step == "claim_ms" else ""
            print(
                f"{name:<10} {step[:-3]:<11} {s['p50']:>8.2f} {s['p95']:>8.2f} "
                f"{s['p99']:>8.2f}  {seed_rate}"
            )
    if "ratio_p95_postgres_over_sqlite" in results:
        print(
            f"p95 round trip, PostgreSQL / SQLite: {results['ratio_p95_postgres_over_sqlite']:.2f}"
        )
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
