"""Benchmark `ingest_paths`: files/s for generated JPEG/PNG images on SQLite and PostgreSQL.

Generates N images (256-1024 px, smooth random fields with edges and noise, 70% JPEG / 30% PNG)
once, then ingests them into a fresh SQLite file and a fresh PostgreSQL database, first with
the default thread pool and then once more (every file an exact duplicate); also one run with a
single worker on SQLite for the pool's speed-up. Writes bench/results/ingest.json (or
--results: a .json file or a folder) with its provenance (bench/provenance.py). Scratch: a temp
dir (TMPDIR), removed afterwards.

Run: .venv/bin/python bench/ingest.py [--n 2000] [--no-pg] [--results PATH]
"""

# ruff: noqa: E402  (sys.path must be fixed before the imports below)
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import provenance
from storage.db import make_engine
from storage.ingest import ingest_paths
from storage.migrate import upgrade
from storage.scratch_db import DEFAULT_ADMIN_URL, create_scratch_database, drop_scratch_database
from storage.settings import Settings

PG_ADMIN_URL = os.environ.get("WARDEN_TEST_PG_URL", DEFAULT_ADMIN_URL)
RESULTS_NAME = "ingest.json"


def generate(out: Path, n: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    total_bytes = 0
    t0 = time.perf_counter()
    for i in range(n):
        w, h = (int(v) for v in rng.integers(256, 1025, size=2))
        coarse = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
        im = Image.fromarray(coarse, "RGB").resize((w, h), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(im)
        for _ in range(4):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        arr = np.asarray(im, dtype=np.int16) + rng.integers(-8, 9, size=(h, w, 3))
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        if rng.random() < 0.7:
            path = out / f"img{i:05d}.jpg"
            im.save(path, "JPEG", quality=88)
        else:
            path = out / f"img{i:05d}.png"
            im.save(path, "PNG")
        total_bytes += path.stat().st_size
    return {"files": n, "bytes": total_bytes, "generate_s": round(time.perf_counter() - t0, 1)}


def run_backend(name: str, url: str, images: Path, work: Path, workers: int | None) -> dict:
    upgrade(url)
    settings = Settings(data_dir=work / f"data-{name}", WARDEN_DATABASE_URL=url)
    engine = make_engine(url)
    try:
        cpu0 = time.process_time()
        first = ingest_paths(engine, settings, [images], source="bench", workers=workers)
        # Process CPU time (all threads): a figure that other load on a shared machine
        # distorts far less than wall-clock files/s.
        cpu_s = time.process_time() - cpu0
        again = ingest_paths(engine, settings, [images], source="bench", workers=workers)
    finally:
        engine.dispose()
    s1, s2 = first.summary, again.summary
    return {
        "backend": name,
        "workers": workers or min(4, os.cpu_count() or 1),
        "files": s1["files"],
        "accepted": s1["accepted"],
        "near_duplicate": s1["near_duplicate"],
        "rejected": s1["rejected"],
        "elapsed_s": s1["elapsed_s"],
        "files_per_s": s1["files_per_s"],
        "cpu_ms_per_file": round(cpu_s / max(s1["files"], 1) * 1000, 1),
        "reingest_duplicates": s2["duplicate"],
        "reingest_elapsed_s": s2["elapsed_s"],
        "reingest_files_per_s": s2["files_per_s"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument(
        "--results",
        default=None,
        help=f"Results .json file or folder (default: bench/results/{RESULTS_NAME}).",
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    out = provenance.results_or_exit(parser, args.results, RESULTS_NAME)
    prov = provenance.start(__file__, argv)

    work = Path(tempfile.mkdtemp(prefix="warden-bench-ingest-"))
    try:
        gen = generate(work / "images", args.n)
        print(
            f"generated {gen['files']} images, {gen['bytes'] / 1e6:.1f} MB in {gen['generate_s']} s"
        )
        runs = [
            run_backend("sqlite", f"sqlite:///{work / 'sqlite.db'}", work / "images", work, None),
            run_backend(
                "sqlite-1worker", f"sqlite:///{work / 'sqlite1.db'}", work / "images", work, 1
            ),
        ]
        if not args.no_pg:
            url = create_scratch_database(PG_ADMIN_URL, prefix="warden_bench")
            try:
                runs.append(run_backend("postgresql", url, work / "images", work, None))
            finally:
                drop_scratch_database(PG_ADMIN_URL, url)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    by = {r["backend"]: r for r in runs}
    ratios = {
        "pool_speedup_sqlite": round(
            by["sqlite"]["files_per_s"] / by["sqlite-1worker"]["files_per_s"], 2
        ),
        "reingest_vs_first_sqlite": round(
            by["sqlite"]["reingest_files_per_s"] / by["sqlite"]["files_per_s"], 1
        ),
    }
    if "postgresql" in by:
        ratios["postgresql_vs_sqlite"] = round(
            by["postgresql"]["files_per_s"] / by["sqlite"]["files_per_s"], 2
        )
    result = {
        "hardware": prov.summary,
        "note": "CPU shared with other processes; compare ratios within one run",
        "images": gen,
        "runs": runs,
        "ratios": ratios,
    }
    provenance.write_results(out, result, prov)

    print(f"\n{'backend':<16}{'workers':>8}{'files':>7}{'accepted':>9}{'near-dup':>9}"
          f"{'files/s':>9}{'CPU ms/file':>12}{'re-ingest files/s':>19}")  # fmt: skip
    for r in runs:
        print(
            f"{r['backend']:<16}{r['workers']:>8}{r['files']:>7}{r['accepted']:>9}"
            f"{r['near_duplicate']:>9}{r['files_per_s']:>9.1f}{r['cpu_ms_per_file']:>12.1f}"
            f"{r['reingest_files_per_s']:>19.1f}"
        )
    print("ratios:", json.dumps(ratios))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
