"""The scoring worker end to end: real ingest, real tiny InternVL, real OCR/NSFW, SQLite and
PostgreSQL; a worker killed with SIGKILL mid-run; three workers against one PostgreSQL.

Run: .venv/bin/pytest tests/model/test_worker.py -q
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from model.loading import load_backend
from model.worker import run_worker
from storage.audit import list_audit
from storage.db import make_engine, unit_of_work
from storage.models import Claim, Item, Prediction
from storage.policy import load_policy
from storage.settings import Settings
from tests.model._worker_support import ingest, predictions_by_item, scoring_settings

WARDEN = str(Path(sys.executable).with_name("warden"))


@pytest.fixture(scope="session")
def worker_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny random InternVL for this module (built offline, ~5 s)."""
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("worker-tiny") / "internvl", "internvl", seed=0)


def scored_and_held(engine: Engine, holder: str) -> tuple[int, int]:
    """(predictions stored, queued items leased to `holder`)."""
    with unit_of_work(engine) as s:
        scored = s.scalar(select(func.count(Prediction.id))) or 0
        held = s.scalar(
            select(func.count(Item.id)).where(Item.lease_holder == holder, Item.status == "queued")
        )
    return scored, held or 0


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(
        WARDEN_DATABASE_URL=settings.database_url,
        WARDEN_DATA_DIR=str(settings.data_dir),
        WARDEN_MODEL__NAME=settings.model.name,
        WARDEN_MODEL__DEVICE="cpu",
        WARDEN_MODEL__DTYPE="float32",
        WARDEN_MODEL__QUANT="none",
        HF_HUB_OFFLINE="1",
        ORT_DISABLE_TELEMETRY="1",
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def test_worker_scores_every_item_with_all_categories(
    settings: Settings, worker_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, worker_tiny_model)
    ids = ingest(settings, tmp_path / "in", 4)
    policy = load_policy(settings.policy_path)
    backend = load_backend(settings.model)

    report = run_worker(settings, backend, limit=None, batch_size=3, progress=False)

    assert (report.scored, report.failed, report.batches) == (4, 0, 2)
    assert report.items_per_s > 0
    preds = predictions_by_item(settings)
    assert sorted(preds) == sorted(ids)
    for item_id in ids:
        (p,) = preds[item_id]
        assert set(p.scores) == set(policy.ids) and len(p.scores) == 11
        assert all(0.0 <= v <= 1.0 for v in p.scores.values())
        assert p.model_version == backend.model_version and p.policy_version == policy.version
        assert 0.0 <= p.signals["nsfw"] <= 1.0
        assert p.signals["ocr_ms"] > 0 and p.signals["nsfw_ms"] > 0
    assert preds[ids[0]][0].ocr_text.replace(" ", "") == "FREECRYPTONOW"
    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as s:
        items = s.scalars(select(Item).where(Item.id.in_(ids))).all()
        assert {i.status for i in items} == {"scored"}
        assert all(i.lease_holder is None for i in items)
    engine.dispose()

    # Nothing left: a second run scores nothing and writes nothing.
    again = run_worker(settings, backend, limit=None, batch_size=3, progress=False)
    assert again.scored == 0
    assert sum(len(v) for v in predictions_by_item(settings).values()) == 4


def test_limit_stops_early(settings: Settings, worker_tiny_model: Path, tmp_path: Path) -> None:
    settings = scoring_settings(settings, worker_tiny_model)
    ingest(settings, tmp_path / "in", 3)
    backend = load_backend(settings.model)
    report = run_worker(settings, backend, limit=2, batch_size=5, progress=False)
    assert report.scored == 2
    assert len(predictions_by_item(settings)) == 2


def test_undecodable_item_is_retried_then_given_up_without_stopping_the_batch(
    settings: Settings, worker_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, worker_tiny_model)
    ids = ingest(settings, tmp_path / "in", 3)
    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as s:
        bad = s.get(Item, ids[1])
        assert bad is not None and bad.view_sha256
        view_sha = bad.view_sha256
    # The stored view is damaged on disk after ingest (bit rot, a bad copy).
    from storage.blobs import BlobStore

    BlobStore(settings.blobs_path).path(view_sha).write_bytes(b"not an image at all")
    backend = load_backend(settings.model)

    report = run_worker(settings, backend, limit=None, batch_size=3, progress=False, max_attempts=2)

    assert report.scored == 2
    assert report.failed == 2 and report.given_up == 1  # two attempts, then given up
    assert sorted(predictions_by_item(settings)) == sorted([ids[0], ids[2]])
    with unit_of_work(engine) as s:
        item = s.get(Item, ids[1])
        assert item is not None
        assert item.status == "failed"
        assert item.meta["score_attempts"] == 2
        assert "image" in item.meta["score_error"]
        assert item.lease_holder is None
        actions = [e.action for e in list_audit(s, item_id=ids[1], limit=50)]
    engine.dispose()
    assert actions.count("score_failed") == 2 and actions.count("score_given_up") == 1


def test_unreachable_backend_stops_the_worker_and_charges_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    import socket

    from model.openai_backend import OpenAIBackend
    from storage.errors import WardenError

    ids = ingest(settings, tmp_path / "in", 2)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_s=0.01)
    with pytest.raises(WardenError, match="cannot reach"):
        run_worker(settings, backend, limit=None, batch_size=5, progress=False)
    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as s:
        items = s.scalars(select(Item).where(Item.id.in_(ids))).all()
        assert {i.status for i in items} == {"queued"}
        assert all(i.lease_holder is None for i in items)  # handed back at once
        assert all("score_attempts" not in (i.meta or {}) for i in items)
    engine.dispose()
    assert predictions_by_item(settings) == {}


def test_cli_refuses_an_uninitialised_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env["WARDEN_DATA_DIR"] = str(tmp_path / "empty")
    proc = subprocess.run(
        [WARDEN, "score", "--model", str(tmp_path / "nowhere")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "not initialised" in proc.stderr and "warden db upgrade" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_killed_worker_loses_nothing(
    settings: Settings, worker_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, worker_tiny_model)
    lease_s = 2
    settings = settings.model_copy(
        update={"queue": settings.queue.model_copy(update={"score_lease_s": lease_s})}
    )
    n = 8
    ids = ingest(settings, tmp_path / "in", n)
    env = worker_env(settings, WARDEN_QUEUE__SCORE_LEASE_S=str(lease_s))
    proc = subprocess.Popen(
        [WARDEN, "score", "--batch-size", "3", "--worker-id", "doomed", "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    engine = make_engine(settings.database_url, settings.db)
    deadline = time.monotonic() + 180
    try:
        # Kill as soon as the worker holds a claimed item that it has not scored yet.
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]  # type: ignore[union-attr]
            scored, held = scored_and_held(engine, "doomed")
            if scored >= 1 and held >= 1:
                break
            assert time.monotonic() < deadline, "the worker never got going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    scored_before, abandoned = scored_and_held(engine, "doomed")
    assert scored_before < n
    # The killed worker's claims are not free until its lease has run out.
    time.sleep(lease_s + 0.5)
    backend = load_backend(settings.model)
    report = run_worker(
        settings, backend, limit=None, batch_size=3, progress=False, worker_id="rescuer"
    )
    assert report.scored == n - scored_before
    preds = predictions_by_item(settings)
    assert sorted(preds) == sorted(ids)
    assert all(len(v) == 1 for v in preds.values())  # exactly one per model + policy version
    assert len({(p.model_version, p.policy_version) for v in preds.values() for p in v}) == 1
    if abandoned:
        with unit_of_work(engine) as s:
            rescued = s.scalar(
                select(func.count(Claim.id)).where(
                    Claim.holder == "rescuer", Claim.outcome == "scored"
                )
            )
        assert rescued == n - scored_before
    engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_three_workers_share_one_postgres_without_double_scoring(
    settings: Settings, worker_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, worker_tiny_model)
    n = 12
    ids = ingest(settings, tmp_path / "in", n)
    env = worker_env(settings)
    procs = [
        subprocess.Popen(
            [WARDEN, "score", "--batch-size", "2", "--worker-id", f"w{k}", "--no-progress"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for k in range(3)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
        outputs.append(out.decode())
    counts = [int(re.search(r"scored (\d+) item", o).group(1)) for o in outputs]  # type: ignore[union-attr]
    assert sum(counts) == n
    assert all("throughput:" in o for o in outputs)
    preds = predictions_by_item(settings)
    assert sorted(preds) == sorted(ids)
    assert all(len(v) == 1 for v in preds.values())
    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as s:
        # Each item was claimed for scoring exactly once: no two workers ever ran it.
        rows = s.execute(
            select(Claim.item_id, func.count(Claim.id))
            .where(Claim.kind == "score")
            .group_by(Claim.item_id)
        )
        per_item = {row[0]: row[1] for row in rows}
        holders = set(s.scalars(select(Claim.holder).where(Claim.kind == "score")))
    engine.dispose()
    assert per_item == {i: 1 for i in ids}
    assert holders <= {"w0", "w1", "w2"}
