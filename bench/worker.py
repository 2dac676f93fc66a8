"""The scoring worker's balance: the pipeline (model.pipeline) against the sequential worker on
the same items in the same run, OCR time per image, and 1, 2 and 4 `warden score` processes
sharing one PostgreSQL database.

N images of text (drawn by plain PIL with bench/demo_foreign.py's renderer, phrases from its
bank, each with a distinct number so none is a near-duplicate) are ingested into a fresh
scratch PostgreSQL database. They are scored by the demo model (assets/model/demo) with
`run_worker(pipeline=False)`, then, with the predictions removed and the items put back in the
queue as ingest left them, with `run_worker(pipeline=True)`: items/s of each and their ratio,
and whether both gave the same predictions. Then the same reset, and 1, 2 and 4 `warden score`
processes started together: items/s over the wall time (model loads included) and from the
first claim to the last recorded prediction (start-up excluded).

On a GPU machine (OCR moves to CUDA by itself when onnxruntime-gpu is installed):
    .venv/bin/python bench/worker.py --n 300 --signal-procs 8 --device cuda

Run: .venv/bin/python bench/worker.py [--n 500] [--scale-n N] [--signal-procs P] [--device D]
                                      [--work DIR] [--results PATH] [--pg-admin-url URL]
Writes bench/results/worker.json (or --results) with its provenance (bench/provenance.py:
machine, load average at start and end). --work keeps the images (default: a temp folder).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance  # noqa: E402

RESULTS_NAME = "worker.json"
WARDEN = str(Path(sys.executable).with_name("warden"))


def write_images(folder: Path, n: int) -> list[Path]:
    from bench.demo_foreign import PHRASES, render

    phrases = [t for texts in PHRASES.values() for t in texts]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"item{i:05d}.png"
        if not path.exists():
            render(f"{phrases[i % len(phrases)]} #{i}", i).save(path)
        paths.append(path)
    return paths


def reset(engine: Any, priorities: dict[int, int]) -> None:
    """Predictions gone, every item queued again with its ingest priority and no lease."""
    from sqlalchemy import update

    from storage.db import unit_of_work
    from storage.models import Item, Prediction

    with unit_of_work(engine) as s:
        s.execute(Prediction.__table__.delete())
        for item_id, priority in priorities.items():
            s.execute(
                update(Item)
                .where(Item.id == item_id)
                .values(
                    status="queued", priority=priority, lease_holder=None, lease_expires_at=None
                )
            )


def predictions(engine: Any) -> dict[int, tuple[Any, ...]]:
    from sqlalchemy import select

    from storage.db import unit_of_work
    from storage.models import Prediction

    with unit_of_work(engine) as s:
        rows = s.scalars(select(Prediction)).all()
        return {
            p.item_id: (
                p.scores,
                p.flagged,
                p.ocr_text,
                p.signals.get("nsfw"),
                p.created_at,
                p.signals.get("ocr_ms"),
            )
            for p in rows
        }


def outcome(preds: dict[int, tuple[Any, ...]]) -> dict[int, tuple[Any, ...]]:
    return {k: v[:4] for k, v in preds.items()}


def ocr_ms(preds: dict[int, tuple[Any, ...]]) -> dict[str, float]:
    ms = sorted(v[5] for v in preds.values() if v[5] is not None)
    if not ms:
        return {}
    return {
        "median": round(statistics.median(ms), 1),
        "mean": round(statistics.fmean(ms), 1),
        "p90": round(ms[int(0.9 * (len(ms) - 1))], 1),
    }


def in_process(
    settings: Any, backend: Any, engine: Any, *, pipeline: bool, procs: int | None, batch_size: int
) -> dict[str, Any]:
    from model.worker import run_worker

    report = run_worker(
        settings,
        backend,
        limit=None,
        batch_size=batch_size,
        progress=False,
        backfill=False,
        pipeline=pipeline,
        signal_procs=procs,
    )
    preds = predictions(engine)
    return {
        "scored": report.scored,
        "failed": report.failed,
        "elapsed_s": round(report.elapsed_s, 2),
        "items_per_s": round(report.items_per_s, 3),
        "ocr_ms_per_image": ocr_ms(preds),
        "_preds": preds,
    }


def processes(
    settings: Any, engine: Any, k: int, *, batch_size: int, procs: int | None
) -> dict[str, Any]:
    env = {key: v for key, v in os.environ.items() if not key.startswith("WARDEN_")}
    env.update(
        WARDEN_DATABASE_URL=settings.database_url,
        WARDEN_DATA_DIR=str(settings.data_dir),
        WARDEN_MODEL__DEVICE=settings.model.device,
        WARDEN_MODEL__QUANT="none",
        HF_HUB_OFFLINE="1",
        ORT_DISABLE_TELEMETRY="1",
    )
    cmd = [
        WARDEN,
        "score",
        "--model",
        "demo",
        "--batch-size",
        str(batch_size),
        "--no-progress",
        "--no-backfill",
    ]
    if procs:
        cmd += ["--signal-procs", str(procs)]
    t0 = time.perf_counter()
    workers = [
        subprocess.Popen(
            cmd + ["--worker-id", f"bench-{k}-{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(k)
    ]
    try:
        outs = [w.communicate()[0].decode() for w in workers]
    finally:
        for w in workers:  # stopped midway (Ctrl-C): leave no worker behind
            if w.poll() is None:
                w.kill()
    wall = time.perf_counter() - t0
    for w, out in zip(workers, outs, strict=True):
        if w.returncode != 0:
            raise SystemExit(f"a worker failed ({w.returncode}):\n{out[-2000:]}")
    from sqlalchemy import func, select

    from storage.db import unit_of_work
    from storage.models import Claim

    preds = predictions(engine)
    with unit_of_work(engine) as s:
        # The workers' first claim: model loading and pool start-up are over by then.
        first = s.scalar(
            select(func.min(Claim.claimed_at)).where(
                Claim.kind == "score", Claim.holder.like(f"bench-{k}-%")
            )
        )
    last = max(v[4] for v in preds.values())
    span = (last - first).total_seconds() if first is not None else 0.0
    return {
        "processes": k,
        "scored": len(preds),
        "wall_s": round(wall, 2),
        "items_per_s_wall": round(len(preds) / wall, 3),
        "first_claim_to_last_s": round(span, 2),
        "items_per_s_after_start": round(len(preds) / span, 3) if span > 0 else None,
        "per_worker_throughput": [
            line.strip() for out in outs for line in out.splitlines() if "throughput" in line
        ],
    }


def scaling_ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """items/s of k processes over that of one process, wall and after start-up, per k."""
    one = next((r for r in rows if r["processes"] == 1), None)
    if one is None:
        return {}

    def ratio(r: dict[str, Any], key: str) -> float | None:
        return round(r[key] / one[key], 3) if r[key] and one[key] else None

    return {
        str(r["processes"]): {
            "wall": ratio(r, "items_per_s_wall"),
            "after_start": ratio(r, "items_per_s_after_start"),
        }
        for r in rows
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="Items for pipeline vs sequential.")
    p.add_argument(
        "--scale-n", type=int, default=None, help="Items for the 1/2/4-process runs (default: --n)."
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--signal-procs",
        type=int,
        default=None,
        help="Signal processes per worker (default: the worker's, one per core but one).",
    )
    p.add_argument("--device", default="auto", help='The VLM\'s device: "auto", "cpu", "cuda".')
    p.add_argument("--scale", default="1,2,4", help="Worker process counts, comma-separated.")
    p.add_argument("--work", type=Path, default=None, help="Folder for the images and blobs.")
    p.add_argument(
        "--results",
        default=None,
        help=f"Results .json file or folder (default: bench/results/{RESULTS_NAME}).",
    )
    p.add_argument("--pg-admin-url", default=None, help="Default: storage.scratch_db's.")
    a = p.parse_args(argv)
    if a.n < 1 or (a.scale_n is not None and a.scale_n < 1):
        p.error("--n and --scale-n must be at least 1")
    if a.scale_n is not None and a.scale_n > a.n:
        p.error("--scale-n cannot exceed --n (the scaling runs re-score the first items)")
    out_path = provenance.results_or_exit(p, a.results, RESULTS_NAME)
    try:
        scale = [int(x) for x in a.scale.split(",") if x.strip()]
    except ValueError as exc:
        p.error(str(exc))
    prov = provenance.start(__file__, argv)

    from sqlalchemy import select

    from model.loading import load_backend
    from model.pipeline import default_signal_procs
    from storage.db import make_engine, unit_of_work
    from storage.ingest import ingest_paths
    from storage.migrate import upgrade
    from storage.models import Item
    from storage.scratch_db import DEFAULT_ADMIN_URL, create_scratch_database, drop_scratch_database
    from storage.settings import ModelSettings, Settings

    admin = a.pg_admin_url or DEFAULT_ADMIN_URL
    tmp = None
    work = a.work
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="warden-bench-worker-")
        work = Path(tmp.name)
    url = create_scratch_database(admin, prefix="warden_bench")
    try:
        upgrade(url)
        n = max(a.n, a.scale_n or 0)
        settings = Settings(
            data_dir=work / "data",
            WARDEN_DATABASE_URL=url,
            model=ModelSettings(name="demo", device=a.device, quant="none"),
        )
        engine = make_engine(url, settings.db)
        images = write_images(work / "images", n)
        t0 = time.perf_counter()
        ingest_report = ingest_paths(engine, settings, images[: a.n])
        ingest_s = time.perf_counter() - t0
        with unit_of_work(engine) as s:
            priorities = {i: pr for i, pr in s.execute(select(Item.id, Item.priority))}
        print(f"{len(priorities)} items ingested in {ingest_s:.1f} s ({ingest_report.summary})")
        backend = load_backend(settings.model)
        # The detectors loaded in this process as they are in the pool's (pool.start()): both
        # timings are of scoring, not of loading.
        from PIL import Image

        from model.signals import compute_signals

        with Image.open(images[0]) as im:
            compute_signals(im.convert("RGB"))

        seq = in_process(
            settings, backend, engine, pipeline=False, procs=None, batch_size=a.batch_size
        )
        print(f"sequential: {seq['items_per_s']} items/s, OCR {seq['ocr_ms_per_image']} ms")
        reset(engine, priorities)
        pipe = in_process(
            settings, backend, engine, pipeline=True, procs=a.signal_procs, batch_size=a.batch_size
        )
        print(f"pipeline:   {pipe['items_per_s']} items/s, OCR {pipe['ocr_ms_per_image']} ms")
        same = outcome(seq.pop("_preds")) == outcome(pipe.pop("_preds"))
        out = {
            "hardware": prov.summary,
            "model": "demo",
            "items": a.n,
            "batch_size": a.batch_size,
            "signal_procs": a.signal_procs or default_signal_procs(),
            "sequential": seq,
            "pipeline": pipe,
            "pipeline_over_sequential": round(pipe["items_per_s"] / seq["items_per_s"], 3),
            "same_predictions": same,
            "scaling_items": a.scale_n or a.n,
            "scaling": [],
            "partial": True,  # until the scaling runs are done
        }
        # Written after each phase (the provenance's end comes with the last write), so a
        # run stopped midway keeps what it measured.
        provenance.write_results(out_path, out, prov.record, default=str)

        scale_n = a.scale_n or a.n
        for k in scale:
            reset(engine, priorities)
            if scale_n != a.n:
                # Only the first scale_n items stay queued for the scaling runs.
                keep = sorted(priorities)[:scale_n]
                with unit_of_work(engine) as s:
                    s.execute(
                        Item.__table__.update().where(Item.id.not_in(keep)).values(status="decided")
                    )
            row = processes(settings, engine, k, batch_size=a.batch_size, procs=a.signal_procs)
            print(
                f"{k} process(es): {row['items_per_s_wall']} items/s (wall), "
                f"{row['items_per_s_after_start']} items/s (first claim to last prediction)"
            )
            out["scaling"].append(row)
            out["scaling_over_one_process"] = scaling_ratios(out["scaling"])
            provenance.write_results(out_path, out, prov.record, default=str)
        engine.dispose()
    finally:
        drop_scratch_database(admin, url)
        if tmp is not None:
            tmp.cleanup()
    out.pop("partial")
    provenance.write_results(out_path, out, prov, default=str)
    print(f"pipeline / sequential: {out['pipeline_over_sequential']}x, same predictions: {same}")
    print(f"-> {out_path}")


if __name__ == "__main__":
    main()
