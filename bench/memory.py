"""Peak memory of a dataset build and of a dashboard refresh over a ledger of N decisions.

Seeds a fresh SQLite ledger (or, with --database-url, that empty migrated database) with Core
bulk inserts: items over 40 days, one label decision each and a superseding correction on
every fifth, a few retractions, two model versions of predictions, reveals, an open backlog.
Each item has its own image, a distinct 8x8 PNG (~100 bytes) in a blob store under --work:
real data has bigger images, so the image share of the figures here is a lower bound.

Then each measurement runs in its own fresh Python process, which reports its peak RSS
(getrusage ru_maxrss) before and after the work:
  dataset       `build_dataset` as `warden dataset build` runs it (streaming)
  dashboard     what the Dashboard tab's Refresh does: `reports.model_versions` + `figures`
and the same over the code as it was before the streaming/SQL change (commit OLD_COMMIT: its
training/dataset.py and storage/reports.py are read with `git show` into --work and imported
from there; nothing in the work tree changes): the old refresh on the same ledger, the old
build beside the new one on a second ledger of --compare-at decisions (it holds every image
and row, ~70 KiB a decision: at 100,000 that would be ~7 GiB on a shared machine).

Run: .venv/bin/python bench/memory.py [--decisions 100000] [--results PATH] [--work DIR]
     [--database-url URL] [--compare-at 20000]
Writes bench/results/memory.json (with provenance: commit, CPU, RAM, load at start and end,
command line). Everything it writes besides the results stays under --work (default: a
temp dir, removed afterwards).
"""

# ruff: noqa: E402  (sys.path must be fixed before the imports below)
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import provenance
from storage.db import make_engine, unit_of_work
from storage.models import AuditEvent, Blob, Decision, Item, Prediction, User
from storage.policy import load_policy
from storage.settings import DEFAULT_POLICY

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "2632a3a"  # the last commit that held every image and row in memory
OLD_CODE = f"training/dataset.py and storage/reports.py at {OLD_COMMIT}, before streaming"
MODERATORS = ("mo1", "mo2", "mo3", "mo4", "mo5")
OPEN = ("queued", "scored", "in_review", "escalated")


def _png(i: int) -> bytes:
    from PIL import Image

    im = Image.new("RGB", (8, 8))
    im.putdata([((i >> 16) & 255, (i >> 8) & 255, (i + k) & 255) for k in range(64)])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def seed_ledger(
    engine: Engine,
    decisions: int,
    *,
    blobs: Path | None = None,
    now: datetime | None = None,
    chunk: int = 5000,
) -> dict[str, int]:
    """Bulk-insert a ledger of exactly `decisions` decision rows (plus open items, predictions
    and reveals); with `blobs`, each item's PNG is written there as a blob store would."""
    policy = load_policy(DEFAULT_POLICY)
    cats = [c for c in policy.ids if c not in policy.restricted_ids]
    now = now or datetime.now(UTC)
    start = now - timedelta(days=40)
    with unit_of_work(engine) as s:
        s.execute(
            insert(User.__table__),
            [
                {"username": u, "password_hash": "x", "role": "moderator", "created_at": start}
                for u in MODERATORS
            ],
        )
    with unit_of_work(engine) as s:
        user_ids = dict(s.execute(text("SELECT username, id FROM users")).all())
    # Every fifth decided item has a correction; every 97th decided item is then retracted.
    per_item = [1, 1, 1, 1, 2]
    counts = {"items": 0, "decisions": 0, "predictions": 0, "open_items": 0}
    item_id, decision_id, i = 0, 0, 0
    while counts["decisions"] < decisions:
        blob_rows, items, preds, decs, audits = [], [], [], [], []
        for _ in range(chunk):
            if counts["decisions"] >= decisions:
                break
            i += 1
            item_id += 1
            at = start + timedelta(seconds=(i * 7919) % (40 * 86400))
            data = _png(i) if blobs is not None else None
            sha = hashlib.sha256(data).hexdigest() if data else f"{i:064x}"
            if data is not None:
                path = blobs / sha[:2] / sha[2:4] / sha
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            blob_rows.append(
                {"sha256": sha, "size_bytes": len(data or b""), "mime": "image/png",
                 "width": 8, "height": 8, "created_at": at}
            )  # fmt: skip
            is_open = i % 20 == 0
            words = f"offer {i} cheap pills" if i % 3 == 0 else f"menu of the day {i}"
            items.append(
                {"id": item_id, "blob_sha256": sha, "status": OPEN[i % 4] if is_open else "decided",
                 "priority": 0, "source": "bench", "animated": False, "phash":
                 f"{(i * 0x9E3779B97F4A7C15) & (2**64 - 1):016x}", "text": None,
                 "meta": {"ocr_text": words}, "created_at": at, "updated_at": at}
            )  # fmt: skip
            counts["items"] += 1
            truth = [cats[i % len(cats)]] if i % 3 else []
            for version, k in (("m1", 0), ("m2", 1)):
                if k and i % 3:
                    continue
                scores = {c: ((i * 31 + j * 17 + k * 7) % 101) / 100 for j, c in enumerate(cats)}
                for c in truth:
                    scores[c] = max(scores[c], 0.6 + (i % 40) / 100)
                preds.append(
                    {"item_id": item_id, "model_version": version, "policy_version":
                     policy.version, "scores": scores, "flagged": policy.flagged(scores),
                     "ocr_text": words, "signals": {}, "latency_ms": 1.0,
                     "created_at": at + timedelta(minutes=1 + k)}
                )  # fmt: skip
                counts["predictions"] += 1
            if is_open:
                counts["open_items"] += 1
                continue
            previous = None
            for n in range(per_item[i % 5]):
                if counts["decisions"] >= decisions:
                    break
                decision_id += 1
                who = MODERATORS[(i + n) % len(MODERATORS)]
                moderator = n > 0 or i % 2 == 0
                labels = truth if n == 0 else [cats[(i + 1) % len(cats)]]
                action = "retract" if n > 0 and i % 97 == 0 else "label"
                decs.append(
                    {"id": decision_id, "item_id": item_id, "action": action,
                     "categories": [] if action == "retract" else labels,
                     "source": "moderator" if moderator else "import",
                     "reviewer_id": user_ids[who] if moderator else None,
                     "reviewer_name": None if moderator else "import-batch",
                     "policy_version": policy.version, "supersedes_id": previous, "meta": {},
                     "created_at": at + timedelta(hours=2 + n)}
                )  # fmt: skip
                previous = decision_id
                counts["decisions"] += 1
                if moderator and i % 20 == 1:
                    audits.append(
                        {"actor": who, "action": "reveal", "item_id": item_id, "details": {},
                         "at": at + timedelta(hours=2)}
                    )  # fmt: skip
        with unit_of_work(engine) as s:
            s.execute(insert(Blob.__table__), blob_rows)
            s.execute(insert(Item.__table__), items)
            s.execute(insert(Prediction.__table__), preds)
            s.execute(insert(Decision.__table__), decs)
            if audits:
                s.execute(insert(AuditEvent.__table__), audits)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            # Explicit ids do not move PostgreSQL's sequences: later ORM inserts need them on.
            for table in ("items", "decisions"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            conn.execute(text("COMMIT"))
            conn.execute(text("ANALYZE"))
    return counts


# --- measured in a child process ------------------------------------------------------------


def _old_module(name: str, path: str, work: Path) -> Any:
    """`path` as it was at OLD_COMMIT, imported under `name` from a copy in `work`."""
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:{path}"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    file = work / f"{name}.py"
    file.write_bytes(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(task: str, database_url: str, work: Path) -> dict[str, Any]:
    from storage.blobs import BlobStore

    policy = load_policy(DEFAULT_POLICY)
    engine = make_engine(database_url)
    old = task.endswith("-old")
    if task.startswith("dataset"):
        if old:
            module = _old_module("dataset_before_streaming", "training/dataset.py", work)
        else:
            import training.dataset as module
        import datasets  # noqa: F401  (imported before the baseline: the build always needs it)
        from pydantic import BaseModel  # noqa: F401

        out = work / f"ds-{task}"
        store = BlobStore(work / "blobs")
        before = _rss_mib()
        t0 = time.perf_counter()
        with unit_of_work(engine) as s:
            info = module.build_dataset(
                s,
                out,
                policy,
                read_image=store.read_bytes,
                options=module.BuildOptions(replay_ratio=0.0, learn_reading=False, name=task),
            )
            s.rollback()  # leave the ledger as seeded for the next measurement
        result = {"items": info.counts["items"], "sft_rows": info.counts["sft"],
                  "data_hash": info.data_hash}  # fmt: skip
        shutil.rmtree(out)
    else:
        from types import SimpleNamespace

        from app.tabs import dashboard

        if old:
            dashboard.reports = _old_module("reports_before_sql", "storage/reports.py", work)
        reports = dashboard.reports
        ctx = SimpleNamespace(engine=engine, policy=policy)
        before = _rss_mib()
        t0 = time.perf_counter()
        with unit_of_work(engine) as s:
            versions = reports.model_versions(s)
        figures = dashboard.figures(ctx, versions[0] if versions else None)
        agreement = figures["table"]
        result = {"figures": len(figures), "agreement_rows": len(agreement)}
    wall = time.perf_counter() - t0
    engine.dispose()
    return {**result, "wall_s": round(wall, 2), "rss_before_mib": round(before, 1),
            "peak_rss_mib": round(_rss_mib(), 1)}  # fmt: skip


def _run_child(task: str, database_url: str, work: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", task, "--database-url", database_url,
         "--work", str(work)],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
             "HF_HOME": str(work / "hf")},
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _seeded(url: str | None, work: Path, decisions: int, name: str) -> tuple[str, dict, float]:
    """Seed `url` (else a new SQLite file in `work`); returns (url, counts, seconds)."""
    from storage.migrate import upgrade

    url = url or f"sqlite:///{work / name}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with unit_of_work(engine) as s:
            if s.scalar(text("SELECT count(*) FROM items")):
                raise SystemExit(f"{engine.url.render_as_string()} is not empty: seed a fresh one")
        t0 = time.perf_counter()
        counts = seed_ledger(engine, decisions, blobs=work / "blobs")
        seconds = time.perf_counter() - t0
    finally:
        engine.dispose()
    print(f"seeded {counts} in {seconds:.0f} s", flush=True)
    return url, counts, round(seconds, 1)


def _measure(tasks: list[str], url: str, work: Path) -> dict[str, Any]:
    measured = {}
    for task in tasks:
        measured[task] = _run_child(task, url, work)
        print(f"{task:14s} {measured[task]}", flush=True)
    return measured


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--decisions", type=int, default=100_000)
    p.add_argument("--results", default=None, help="default bench/results/memory.json")
    p.add_argument("--work", type=Path, default=None, help="scratch dir (default: a temp dir)")
    p.add_argument(
        "--database-url", default=None, help="an empty migrated database to seed (default SQLite)"
    )
    p.add_argument(
        "--compare-at",
        type=int,
        default=20_000,
        help="decisions in the ledger the old code is measured on (it holds ~70 KiB per "
        "decision: 100,000 would take ~7 GiB); 0 skips the comparison",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.decisions < 1 or args.compare_at < 0:
        p.error("--decisions must be at least 1 and --compare-at at least 0")
    if args.child:
        print(json.dumps(child(args.child, args.database_url, args.work)))
        return 0
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        p.error(f"--work {args.work} is not empty")

    prov = provenance.start(__file__, argv)
    results = provenance.results_or_exit(p, args.results, "memory.json")
    work = args.work or Path(tempfile.mkdtemp(prefix="warden-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        url, counts, seed_s = _seeded(args.database_url, work, args.decisions, "warden.db")
        payload: dict[str, Any] = {
            "decisions": args.decisions,
            "ledger": counts,
            "backend": make_engine(url).dialect.name,
            "seed_s": seed_s,
            "images": "one distinct 8x8 PNG per item (~100 bytes); real images are larger, "
            "so the image share of the dataset figures is a lower bound",
            # The old refresh is cheap to run at full size; the old build is not (below).
            "runs": _measure(
                ["dataset", "dashboard"] + (["dashboard-old"] if args.compare_at else []),
                url,
                work,
            ),
        }
        if args.compare_at:
            n = min(args.compare_at, args.decisions)
            cmp_url, cmp_counts, _ = (
                (url, counts, seed_s)
                if n == args.decisions
                else _seeded(None, work, n, "compare.db")
            )
            payload["comparison"] = {
                "decisions": n,
                "ledger": cmp_counts,
                "backend": make_engine(cmp_url).dialect.name,
                "old_code": OLD_CODE,
                "runs": _measure(["dataset", "dataset-old"], cmp_url, work),
            }
            runs = payload["comparison"]["runs"]
            # Same ledger, same options: the old and the new build must make the same data.
            payload["comparison"]["same_data_hash"] = (
                runs["dataset"]["data_hash"] == runs["dataset-old"]["data_hash"]
            )
        provenance.write_results(results, payload, prov)
        print(f"wrote {results}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
