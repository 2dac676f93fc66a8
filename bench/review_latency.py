"""Review latency in the browser: time from a keyboard submit to the next item's id on screen.

Seeds a fresh database with 100,000 scored items (core bulk inserts; the reviewed ones are real
images), starts `warden serve`, logs a moderator in with Debian Chromium (Playwright) and
submits ~50 decisions with the keyboard. Latency is measured inside the page: the Enter
keydown's `performance.now()` to the first animation frame where the item box shows a new id.
Two paces: a moderator glancing at each item (think time before each submit) and back-to-back
submits (the prefetched item may not be back yet, so some submits wait for the server).

Run: .venv/bin/python bench/review_latency.py [--items 100000] [--submits 50] [--postgres]
     [--results PATH]
Writes bench/results/review_latency.json (review_latency_postgres.json), or --results (a .json
file or a folder), with its provenance (bench/provenance.py) and prints a table. Scratch: a
temp dir (TMPDIR) holding the database, blobs and the server's log, removed unless --keep.
"""

# ruff: noqa: E402  (the sys.path fix below must run before the imports)
from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, update

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import provenance
from storage.db import make_engine, unit_of_work
from storage.migrate import upgrade
from storage.models import Blob, Item, Prediction
from storage.policy import load_policy
from storage.scratch_db import DEFAULT_ADMIN_URL, create_scratch_database, drop_scratch_database
from storage.settings import Settings
from tests.conftest import CHROMIUM_ARGS  # the flags FACTS.md gives for offline Chromium

PASSWORD = "bench-password-1"
PG_ADMIN_URL = DEFAULT_ADMIN_URL
ITEM_BOX = "#wd-item-id textarea, #wd-item-id input"

# Installed once in the page: records Enter keydown time and the frame where the id changes.
PROBE_JS = """
() => {
  const box = () => document.querySelector('#wd-item-id textarea, #wd-item-id input');
  window.__lat = [];
  // On window, capture phase: runs before the page's own shortcut listener on document.
  window.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    const t0 = performance.now();
    const before = box().value;
    const tick = () => {
      const v = box().value;
      if (v && v !== before) { window.__lat.push([before, v, performance.now() - t0]); return; }
      if (performance.now() - t0 < 10000) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }, true);
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(settings: Settings, n_items: int, n_real: int) -> None:
    """`n_real` real images on top of the queue, then filler rows up to `n_items`."""
    from PIL import Image, ImageDraw

    from storage.ingest import ingest_paths
    from storage.users import create_user

    policy = load_policy(settings.policy_path)
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as s:
        create_user(s, "bench_mod", PASSWORD, "moderator")
    img_dir = settings.data_dir.parent / "images"
    img_dir.mkdir(parents=True)
    rng = random.Random(0)
    paths = []
    for i in range(n_real):
        img = Image.new("RGB", (320, 240), (250, 250, 250))
        d = ImageDraw.Draw(img)
        for _ in range(40):
            x, y = rng.randrange(320), rng.randrange(240)
            d.rectangle(
                [x, y, x + rng.randrange(5, 60), y + rng.randrange(5, 60)],
                fill=tuple(rng.randrange(256) for _ in range(3)),
            )
        d.text((10, 10), f"bench item {i}", fill=(0, 0, 0))
        path = img_dir / f"bench-{i:03d}.png"
        img.save(path)
        paths.append(path)
    report = ingest_paths(engine, settings, paths, source="bench", policy=policy)
    real_ids = [r.item_id for r in report.results if r.item_id is not None]

    now = datetime.now(UTC)
    scores_lo = {c: 0.05 for c in policy.ids}
    chunk = 5000
    filler = n_items - len(real_ids)
    with engine.begin() as conn:
        for start in range(0, filler, chunk):
            rows = range(start, min(start + chunk, filler))
            shas = [hashlib.sha256(f"filler-{i}".encode()).hexdigest() for i in rows]
            conn.execute(
                insert(Blob),
                [
                    {
                        "sha256": h,
                        "size_bytes": 1,
                        "mime": "image/png",
                        "width": 1,
                        "height": 1,
                        "created_at": now,
                    }
                    for h in shas
                ],
            )
            res = conn.execute(
                insert(Item).returning(Item.id),
                [
                    {
                        "blob_sha256": h,
                        "view_sha256": h,
                        "source": "filler",
                        "status": "scored",
                        "priority": 0,
                        "filename": f"filler-{i}.png",
                        "meta": {},
                        "created_at": now - timedelta(seconds=filler - i),
                        "updated_at": now,
                    }
                    for i, h in zip(rows, shas, strict=True)
                ],
            )
            ids = [r[0] for r in res]
            conn.execute(
                insert(Prediction),
                [
                    {
                        "item_id": i,
                        "model_version": "bench",
                        "policy_version": policy.version,
                        "scores": scores_lo,
                        "flagged": [],
                        "signals": {"nsfw": 0.01},
                        "latency_ms": 1.0,
                        "created_at": now,
                    }
                    for i in ids
                ],
            )
    with unit_of_work(engine) as s:
        for rank, item_id in enumerate(real_ids):
            s.execute(
                update(Item).where(Item.id == item_id).values(status="scored", priority=1000 - rank)
            )
            s.add(
                Prediction(
                    item_id=item_id,
                    model_version="bench",
                    policy_version=policy.version,
                    scores=scores_lo,
                    flagged=[],
                    signals={"nsfw": 0.01},
                    latency_ms=1.0,
                )
            )
    engine.dispose()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(base_url: str, submits: int, think_ms: list[int]) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base_url}/login")
        page.fill("#username", "bench_mod")
        page.fill("#password", PASSWORD)
        page.click("#login-btn")
        page.wait_for_url("**/ui/**")
        page.wait_for_function(f"() => document.querySelector('{ITEM_BOX}')?.value")
        page.evaluate(PROBE_JS)
        for think in think_ms:
            page.evaluate("() => { window.__lat = []; }")
            for i in range(submits):
                page.wait_for_timeout(think)
                page.keyboard.press("4" if i % 3 == 0 else "8")
                page.keyboard.press("Enter")
                try:
                    page.wait_for_function(f"() => window.__lat.length >= {i + 1}", timeout=15000)
                except Exception:
                    state = page.evaluate(
                        "() => [window.__lat, ['#wd-item-id', '#wd-status', '#wd-meta'].map("
                        "s => document.querySelector(s + ' textarea, ' + s + ' input')?.value)]"
                    )
                    raise RuntimeError(f"submit {i} (think {think} ms) stuck: {state}") from None
            page.wait_for_timeout(1000)  # let the last save land
            out[f"think_{think}ms"] = [row[2] for row in page.evaluate("() => window.__lat")]
        browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--submits", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        nargs="?",
        const=PG_ADMIN_URL,
        default=None,
        help=f"run on a fresh PostgreSQL database created via ADMIN_URL ({PG_ADMIN_URL})",
    )
    parser.add_argument(
        "--results",
        default=None,
        help="Results .json file or folder (default: bench/results/review_latency.json, "
        "review_latency_postgres.json with --postgres).",
    )
    args = parser.parse_args(argv)
    n_real = 2 * args.submits + 10
    if args.submits < 2:
        parser.error("--submits must be at least 2")
    if args.items < n_real:
        parser.error(f"--items ({args.items}) must be at least 2 * --submits + 10 ({n_real})")
    name = "review_latency_postgres" if args.postgres else "review_latency"
    out = provenance.results_or_exit(parser, args.results, f"{name}.json")
    prov = provenance.start(__file__, argv)

    work = Path(tempfile.mkdtemp(prefix="warden-bench-"))
    try:
        report = _run(args, work, n_real)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report["hardware"] = prov.summary
    provenance.write_results(out, report, prov)
    print(f"review latency, {args.items:,} items, {report['hardware']}, {report['database']}")
    print(f"{'pace':<16}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for pace, r in report["results"].items():
        print(f"{pace:<16}{r['n']:>5}{r['p50_ms']:>10}{r['p95_ms']:>10}{r['max_ms']:>10}")
    print(f"wrote {out}")
    if args.keep:
        print(f"kept {work}")


def _run(args: argparse.Namespace, work: Path, n_real: int) -> dict:
    """Seed, serve, measure in Chromium; the report without provenance."""
    pg_db = create_scratch_database(args.postgres, prefix="warden_bench") if args.postgres else None
    try:
        return _run_on(args, work, n_real, pg_db)
    finally:
        if pg_db:
            drop_scratch_database(args.postgres, pg_db)


def _run_on(args: argparse.Namespace, work: Path, n_real: int, pg_db: str | None) -> dict:
    url = pg_db or f"sqlite:///{work / 'warden.db'}"
    settings = Settings(data_dir=work / "data", WARDEN_DATABASE_URL=url)
    upgrade(url)
    t0 = time.perf_counter()
    seed(settings, args.items, n_real=n_real)
    seed_s = time.perf_counter() - t0

    port = free_port()
    env = dict(
        os.environ,
        WARDEN_DATA_DIR=str(settings.data_dir),
        WARDEN_DATABASE_URL=url,
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        ORT_DISABLE_TELEMETRY="1",
        # Gradio's file cache defaults to the system temp dir; keep it with the rest.
        GRADIO_TEMP_DIR=str(work / "gradio-tmp"),
    )
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "warden"), "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        results = measure(base, args.submits, think_ms=[500, 0])
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()

    rows = {}
    for name, lat in results.items():
        rows[name] = {
            "n": len(lat),
            "p50_ms": round(percentile(lat, 0.5), 1),
            "p95_ms": round(percentile(lat, 0.95), 1),
            "max_ms": round(max(lat), 1),
            "mean_ms": round(statistics.fmean(lat), 1),
        }
    return {
        "benchmark": "review_latency",
        "what": "keyboard submit (Enter keydown) to the next item's id painted, in Chromium",
        "database": "PostgreSQL" if pg_db else "SQLite (WAL)",
        "items_in_db": args.items,
        "seed_s": round(seed_s, 1),
        "results": rows,
        "target_p95_ms": 150,  # issue 17: keypress to next item painted, p95
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    main()
