"""Label Studio throughput and latency against a real local server.

Measures (one run, same server, same machine):
- push: tasks/s importing 1,000 items in batches of 100 vs one task per request (ratio);
- annotation-to-decision latency through the webhook: an annotation created through the API
  until its decision is visible in Warden's database (p50/p95 over 20 annotations).

Run: .venv/bin/python bench/labelstudio.py [--items 1000] [--annotations 20] [--results PATH]
Writes bench/results/labelstudio.json (or --results: a .json file or a folder) with its
provenance (bench/provenance.py) and prints a table. Scratch: a temp dir (TMPDIR) holding the
databases and the server's data dir, removed afterwards; the Label Studio install and its
migrated template live in WARDEN_CACHE_DIR (~/.cache/warden), built once.
"""

from __future__ import annotations

import argparse
import random
import statistics

# ruff: noqa: E402  (sys.path is fixed before the imports below)
import sys
import tempfile
import threading
import time
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import provenance
from storage.db import make_engine, unit_of_work
from storage.migrate import upgrade
from storage.models import Blob, Decision, Item, Prediction
from storage.policy import load_policy
from storage.settings import DEFAULT_POLICY, Settings
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import setup
from training.labelstudio.server import (
    LS_VERSION,
    LabelStudioServer,
    free_port,
    fresh_data_dir,
)
from training.labelstudio.sync import push

UI_SECRET = "bench-secret-key-0123456789abcdef-0123456789"


def _settings(tmp: Path, server: LabelStudioServer, name: str) -> Settings:
    url = f"sqlite:///{tmp / name}.db"
    upgrade(url)
    s = Settings(data_dir=tmp / name, WARDEN_DATABASE_URL=url)
    return s.model_copy(
        update={
            "labelstudio": s.labelstudio.model_copy(
                update={
                    "url": server.url,
                    "api_key": SecretStr(server.api_key),
                    "webhook_secret": SecretStr("bench-webhook-secret-xyz"),
                }
            ),
            # storage.signing refuses a UI secret under 32 bytes (it signs the image URLs).
            "ui": s.ui.model_copy(update={"secret_key": SecretStr(UI_SECRET)}),
        }
    )


def _make_items(settings: Settings, n: int) -> None:
    policy = load_policy(DEFAULT_POLICY)
    engine = make_engine(settings.database_url)
    rng = random.Random(0)
    with unit_of_work(engine) as s:
        for i in range(n):
            sha = f"{i:064x}"  # URLs are signed per item; Label Studio never fetches on import
            s.add(Blob(sha256=sha, size_bytes=1, mime="image/png", width=1, height=1))
            item = Item(
                blob_sha256=sha,
                view_sha256=sha,
                status="scored",
                phash=f"{rng.getrandbits(64):016x}",
            )
            s.add(item)
            s.flush()
            scores = {c: rng.random() for c in policy.ids}
            # Restricted content never leaves Warden: keep it out so every item is eligible.
            scores.update({c: 0.01 for c in policy.restricted_ids})
            s.add(
                Prediction(
                    item_id=item.id,
                    model_version="bench",
                    policy_version=policy.version,
                    scores=scores,
                    flagged=policy.flagged(scores),
                )
            )
    engine.dispose()


def bench_push(
    tmp: Path, server: LabelStudioServer, client: LabelStudioClient, n: int, batch: int
) -> dict[str, float]:
    settings = _settings(tmp, server, f"push-{batch}")
    _make_items(settings, n)
    setup(settings, client=client)
    engine = make_engine(settings.database_url)
    t0 = time.perf_counter()
    report = push(settings, engine, budget=n, batch_size=batch, client=client, seed=0)
    elapsed = time.perf_counter() - t0
    assert report.delivered is not None and report.delivered.failed == 0, report.delivered
    engine.dispose()
    return {
        "items": report.selected,
        "batch_size": batch,
        "seconds": round(elapsed, 2),
        "tasks_per_s": round(report.selected / elapsed, 1),
    }


def bench_webhook(
    tmp: Path, server: LabelStudioServer, client: LabelStudioClient, n: int
) -> dict[str, float]:
    import uvicorn
    from fastapi import FastAPI

    from training.labelstudio.webhook import make_webhook_router

    settings = _settings(tmp, server, "webhook")
    _make_items(settings, n)
    engine = make_engine(settings.database_url)
    app = FastAPI()
    app.include_router(make_webhook_router(settings, engine, client), prefix="/hooks/labelstudio")
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    state = setup(settings, client=client, webhook_url=f"http://127.0.0.1:{port}/hooks/labelstudio")
    push(settings, engine, budget=n, client=client, seed=0)
    tasks = list(client.iter_tasks(state.project_id))
    latencies = []
    for i, t in enumerate(tasks[:n]):
        t0 = time.perf_counter()
        client.create_annotation(
            t["id"],
            [
                {
                    "from_name": "categories",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": ["weapons"]},
                }
            ],
        )
        while True:
            with unit_of_work(engine) as s:
                if s.scalar(select(func.count()).select_from(Decision)) > i:
                    break
            time.sleep(0.002)
        latencies.append((time.perf_counter() - t0) * 1000)
    srv.should_exit = True
    thread.join(10)
    engine.dispose()
    q = statistics.quantiles(latencies, n=20)
    return {
        "annotations": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(q[18], 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Label Studio push and webhook benchmark")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--annotations", type=int, default=20)
    parser.add_argument(
        "--results",
        default=None,
        help="Results .json file or folder (default: bench/results/labelstudio.json).",
    )
    args = parser.parse_args(argv)
    if args.annotations < 2:
        parser.error("--annotations must be at least 2 (p95 needs two)")
    if args.items < args.annotations:
        parser.error(f"--items ({args.items}) must be at least --annotations")
    out = provenance.results_or_exit(parser, args.results, "labelstudio.json")
    prov = provenance.start(__file__, argv)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = LabelStudioServer(data_dir=fresh_data_dir(tmp / "ls"))
        server.start()
        try:
            client = LabelStudioClient(server.url, server.api_key, timeout_s=120)
            batched = bench_push(tmp, server, client, args.items, 100)
            single = bench_push(tmp, server, client, args.items, 1)
            hook = bench_webhook(tmp, server, client, args.annotations)
            client.close()
        finally:
            server.stop()
    result = {
        "hardware": prov.summary,
        "label_studio": f"{LS_VERSION} (Django dev server, SQLite)",
        "push_batched": batched,
        "push_single": single,
        "batched_vs_single_ratio": round(batched["tasks_per_s"] / single["tasks_per_s"], 1),
        "webhook_latency": hook,
    }
    provenance.write_results(out, result, prov)
    print(f"{'measure':<38}{'value':>14}")
    print(f"{'push, batches of 100 (tasks/s)':<38}{batched['tasks_per_s']:>14}")
    print(f"{'push, one per request (tasks/s)':<38}{single['tasks_per_s']:>14}")
    print(f"{'batched / single':<38}{result['batched_vs_single_ratio']:>13}x")
    print(f"{'annotation -> decision p50 (ms)':<38}{hook['p50_ms']:>14}")
    print(f"{'annotation -> decision p95 (ms)':<38}{hook['p95_ms']:>14}")
    print(f"({result['hardware']}; written to {out})")


if __name__ == "__main__":
    main()
