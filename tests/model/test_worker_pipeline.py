"""The pipelined scoring worker (model.pipeline): the same predictions as the sequential one,
no item lost when a signal process dies, at most `max_in_flight` batches claimed, a clean
drain on SIGTERM, and the OCR hint left out of the prompt when the setting says so. Real
ingest, a real tiny InternVL, real RapidOCR/NSFW processes, SQLite and PostgreSQL.

Run: .venv/bin/pytest tests/model/test_worker_pipeline.py -q
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from model.backends import ScoringInput
from model.loading import load_backend
from model.worker import run_worker
from storage.blobs import BlobStore
from storage.db import make_engine, unit_of_work
from storage.errors import WardenError
from storage.images import open_view_image
from storage.models import Item, Prediction
from storage.policy import load_policy
from storage.settings import Settings
from tests.model._worker_support import ingest, predictions_by_item, scoring_settings
from tests.model.test_worker import WARDEN, worker_env


@pytest.fixture(scope="module")
def pipeline_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("pipeline-tiny") / "internvl", "internvl", seed=0)


def with_worker(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"worker": settings.worker.model_copy(update=update)})


def outcome(settings: Settings) -> dict[int, tuple[dict, list, str | None, object]]:
    """Per item: (scores, flagged, stored OCR text, NSFW score): what a moderator sees."""
    return {
        item_id: (p.scores, p.flagged, p.ocr_text, p.signals.get("nsfw"))
        for item_id, (p,) in predictions_by_item(settings).items()
    }


def test_pipeline_gives_the_sequential_predictions(
    settings: Settings, pipeline_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, pipeline_tiny_model)
    ids = ingest(settings, tmp_path / "in", 5)
    backend = load_backend(settings.model)
    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as s:
        priorities = dict(s.execute(select(Item.id, Item.priority)).tuples().all())

    sequential = run_worker(
        settings, backend, limit=None, batch_size=2, progress=False, pipeline=False
    )
    before = outcome(settings)
    # Back to the queue as ingest left it (same order, so the same batches), predictions gone.
    with unit_of_work(engine) as s:
        s.execute(Prediction.__table__.delete())
        for item_id, priority in priorities.items():
            s.execute(
                update(Item).where(Item.id == item_id).values(status="queued", priority=priority)
            )
    pipelined = run_worker(
        settings, backend, limit=None, batch_size=2, progress=False, pipeline=True, signal_procs=2
    )
    engine.dispose()

    assert (sequential.scored, pipelined.scored, pipelined.failed) == (5, 5, 0)
    after = outcome(settings)
    assert sorted(after) == sorted(ids)
    assert after == before
    assert "FREE" in (after[ids[0]][2] or "")  # OCR ran in the pool and reached the record


def test_a_killed_signal_process_loses_no_item(
    settings: Settings, pipeline_tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="model.pipeline")
    settings = scoring_settings(settings, pipeline_tiny_model)
    ids = ingest(settings, tmp_path / "in", 6)
    killed: list[int] = []

    def kill_a_signal_process(in_flight: int) -> None:
        # Right after the first batch went to the pool: its process dies mid-batch.
        if not killed:
            children = multiprocessing.active_children()
            assert children, "no signal process to kill"
            os.kill(children[0].pid, signal.SIGKILL)  # type: ignore[arg-type]
            killed.append(children[0].pid)  # type: ignore[arg-type]

    report = run_worker(
        settings,
        load_backend(settings.model),
        limit=None,
        batch_size=3,
        progress=False,
        pipeline=True,
        signal_procs=1,
        on_in_flight=kill_a_signal_process,
    )

    assert killed
    assert "a signal process died" in caplog.text  # the pool broke and was replaced
    assert (report.scored, report.failed, report.errors) == (6, 0, {})
    preds = predictions_by_item(settings)
    assert sorted(preds) == sorted(ids)
    assert all(len(v) == 1 for v in preds.values())
    assert "FREE" in (preds[ids[0]][0].ocr_text or "")  # its signals were computed again


def test_in_flight_batches_never_exceed_the_bound(
    settings: Settings, pipeline_tiny_model: Path, tmp_path: Path
) -> None:
    bound, batch = 2, 1
    settings = with_worker(scoring_settings(settings, pipeline_tiny_model), max_in_flight=bound)
    ingest(settings, tmp_path / "in", 6)
    engine = make_engine(settings.database_url, settings.db)
    seen: list[tuple[int, int]] = []

    def observe(in_flight: int) -> None:
        # What the database says the worker holds right now, beside the worker's own count.
        with unit_of_work(engine) as s:
            held = s.scalar(
                select(func.count(Item.id)).where(
                    Item.lease_holder == "bounded", Item.status == "queued"
                )
            )
        seen.append((in_flight, held or 0))

    report = run_worker(
        settings,
        load_backend(settings.model),
        limit=None,
        batch_size=batch,
        progress=False,
        worker_id="bounded",
        pipeline=True,
        signal_procs=1,
        on_in_flight=observe,
    )
    engine.dispose()

    assert report.scored == 6
    assert max(n for n, _ in seen) == bound  # the pipeline does fill up to the bound...
    assert all(n <= bound and held <= bound * batch for n, held in seen)  # ...and no further


def test_sigterm_scores_the_batches_in_flight_and_exits(
    settings: Settings, pipeline_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, pipeline_tiny_model)
    n = 12
    ingest(settings, tmp_path / "in", n)
    proc = subprocess.Popen(
        [
            WARDEN,
            "score",
            "--follow",
            "--pipeline",
            "--signal-procs",
            "1",
            "--batch-size",
            "2",
            "--worker-id",
            "drained",
            "--no-progress",
            "--no-backfill",
        ],
        env=worker_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    engine = make_engine(settings.database_url, settings.db)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]  # type: ignore[union-attr]
            with unit_of_work(engine) as s:
                scored = s.scalar(select(func.count(Prediction.id))) or 0
            if scored >= 1:
                break
            assert time.monotonic() < deadline, "the worker never got going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.decode()
    assert proc.returncode == 0, text[-2000:]
    with unit_of_work(engine) as s:
        scored = s.scalar(select(func.count(Prediction.id))) or 0
        held = s.scalar(select(func.count(Item.id)).where(Item.lease_holder == "drained")) or 0
        queued = s.scalar(select(func.count(Item.id)).where(Item.status == "queued")) or 0
    engine.dispose()
    assert held == 0  # nothing it claimed is left leased: scored, or never claimed
    assert scored + queued == n
    assert f"scored {scored} item(s)" in text
    assert not multiprocessing.active_children()


def test_without_the_ocr_hint_the_prompt_has_no_ocr_text(
    settings: Settings, pipeline_tiny_model: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, pipeline_tiny_model)
    settings = settings.model_copy(
        update={"model": settings.model.model_copy(update={"ocr_hint": False})}
    )
    (item_id,) = ingest(settings, tmp_path / "in", 1)  # image 0: a "FREE CRYPTO NOW" banner
    backend = load_backend(settings.model)
    report = run_worker(
        settings, backend, limit=None, batch_size=1, progress=False, pipeline=True, signal_procs=1
    )
    assert report.scored == 1
    (pred,) = predictions_by_item(settings)[item_id]
    assert "FREE" in (pred.ocr_text or "")  # OCR still ran and is stored for the card/search

    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as s:
        item = s.get(Item, item_id)
        sha = item.view_sha256 or item.blob_sha256
    engine.dispose()
    image = open_view_image(BlobStore(settings.blobs_path), sha)
    policy = load_policy(settings.policy_path)
    (without,) = backend.score([ScoringInput(image=image, ocr_text=None)], policy)
    (with_hint,) = backend.score([ScoringInput(image=image, ocr_text=pred.ocr_text)], policy)
    assert with_hint.scores != without.scores  # the hint does change this model's scores
    assert pred.scores == pytest.approx(without.scores, abs=1e-6)


def test_ocr_on_cuda_without_a_gpu_refuses_before_claiming(
    settings: Settings, pipeline_tiny_model: Path, tmp_path: Path
) -> None:
    import onnxruntime
    import torch

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers() and (
        torch.cuda.is_available()
    ):
        pytest.skip("this machine can run OCR on CUDA")
    settings = with_worker(scoring_settings(settings, pipeline_tiny_model), ocr_device="cuda")
    ingest(settings, tmp_path / "in", 1)
    with pytest.raises(WardenError, match="OCR_DEVICE=cuda"):
        run_worker(
            settings,
            load_backend(settings.model),
            limit=None,
            batch_size=1,
            progress=False,
            pipeline=True,
            signal_procs=1,
        )
    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as s:
        untouched = s.scalar(
            select(func.count(Item.id)).where(Item.status == "queued", Item.lease_holder.is_(None))
        )
    engine.dispose()
    assert untouched == 1  # nothing was claimed, nothing charged


def _children(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (Linux /proc)."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid) and not fields["State"].startswith("Z"):
            out.append(int(status.parent.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited; init reaps it when it will


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_worker_killed_with_sigkill_takes_its_signal_processes_with_it(
    settings: Settings, pipeline_tiny_model: Path
) -> None:
    settings = scoring_settings(settings, pipeline_tiny_model)
    proc = subprocess.Popen(
        [WARDEN, "score", "--follow", "--pipeline", "--signal-procs", "1", "--no-progress"],
        env=worker_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        pool: list[int] = []
        while not pool:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the worker never started its signal pool"
            time.sleep(0.2)
            pool = [pid for pid in _children(proc.pid) if b"spawn_main" in _cmdline(pid)]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pool) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in pool if _alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)  # do not leave them behind when the test fails
        assert not left, "signal processes outlived their killed worker"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipeline", "sequential"])
def test_the_worker_reads_with_the_configured_ocr_engine(
    pipeline_tiny_model: Path, tmp_path: Path, pipeline: bool
) -> None:
    """WARDEN_MODEL__OCR_ENGINE reaches the worker's OCR on both paths: a Korean card is stored
    with its Hangul under `auto` and without it under `rapidocr` (which cannot read Hangul)."""
    from model.ocr_tesseract import available
    from storage.ingest import ingest_paths
    from storage.migrate import upgrade
    from tests.model.test_ocr_korean import korean_image

    missing = available("kor")
    if missing is not None:
        pytest.fail(f"{missing} (`make system-deps` installs it)")
    card = tmp_path / "ko.png"
    korean_image().save(card)
    stored: dict[str, str] = {}
    for engine_name in ("rapidocr", "auto"):
        url = f"sqlite:///{tmp_path / (engine_name + '.db')}"
        upgrade(url)
        settings = scoring_settings(
            Settings(data_dir=tmp_path / engine_name, WARDEN_DATABASE_URL=url),
            pipeline_tiny_model,
        )
        settings = settings.model_copy(
            update={"model": settings.model.model_copy(update={"ocr_engine": engine_name})}
        )
        engine = make_engine(settings.database_url, settings.db)
        try:
            report = ingest_paths(engine, settings, [card])
        finally:
            engine.dispose()
        (item_id,) = [r.item_id for r in report.results if r.status == "accepted"]
        backend = load_backend(settings.model)
        run_worker(
            settings,
            backend,
            limit=None,
            batch_size=1,
            progress=False,
            pipeline=pipeline,
            signal_procs=1,
        )
        (pred,) = predictions_by_item(settings)[item_id]
        stored[engine_name] = pred.ocr_text or ""
    hangul = [sum("\uac00" <= ch <= "\ud7a3" for ch in stored[e]) for e in ("rapidocr", "auto")]
    assert hangul[0] == 0 and hangul[1] >= 4, stored
