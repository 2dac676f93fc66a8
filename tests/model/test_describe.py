"""Descriptions for text-first review through the real scoring worker: with
`WARDEN_MODEL__DESCRIBE` on, the tiny real-architecture InternVL writes one description per
image of a post and per sampled frame of a video (frames with their timestamps), stored with
the prediction with its time; off, nothing is generated; the demo checkpoint (a classifier over
OCR text) never generates one and its predictions say so. Real ingest (post manifest, PyAV
video), real SQLite/PostgreSQL, real models.

Run: WARDEN_TEST_NO_PG=1 .venv/bin/pytest tests/model/test_describe.py -q
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from model.describe import DESCRIPTION_KEY, clean, sees_images
from model.loading import DEMO_MODEL_DIR, load_backend
from model.worker import run_worker
from storage.db import make_engine, unit_of_work
from storage.errors import WardenError
from storage.media import Medium, media_of
from storage.models import Prediction
from storage.policy import load_policy
from storage.settings import Settings
from tests.model._worker_support import ingest_post_video_single, scoring_settings


@pytest.fixture(scope="module")
def describe_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("describe-tiny") / "internvl", "internvl", seed=0)


def _with_model(settings: Settings, model_dir: Path, *, describe: bool) -> Settings:
    settings = scoring_settings(settings, model_dir)
    model = settings.model.model_copy(update={"describe": describe, "describe_max_new_tokens": 12})
    limits = settings.limits.model_copy(update={"video_sample_frames": 2})
    return settings.model_copy(update={"model": model, "limits": limits})


def _read(settings: Settings, ids: tuple[int, ...]) -> tuple[dict[int, Prediction], dict]:
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            preds = {p.item_id: p for p in s.scalars(select(Prediction))}
            media: dict[int, list[Medium]] = {i: media_of(s, i) for i in ids}
            for p in preds.values():
                s.expunge(p)
    finally:
        engine.dispose()
    return preds, media


def test_worker_describes_every_medium_and_reports_the_time(
    settings: Settings, describe_tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _with_model(settings, describe_tiny_model, describe=True)
    ids = ingest_post_video_single(settings, tmp_path / "in")
    backend = load_backend(settings.model)
    assert backend.sees_images
    with caplog.at_level(logging.INFO, logger="model.worker"):
        report = run_worker(
            settings, backend, limit=None, batch_size=4, progress=False, pipeline=False
        )
    assert (report.scored, report.failed) == (3, 0), report.errors
    preds, media = _read(settings, ids)
    total = sum(len(m) for m in media.values())
    assert total == 3 + 2 + 1
    # One batched call for the batch's six media, its time in the report and the log line.
    assert report.described == total and report.describe_s > 0
    assert any("descriptions of 6 media in" in r.getMessage() for r in caplog.records)

    seconds = 0.0
    for item_id in ids:
        record = preds[item_id].signals[DESCRIPTION_KEY]
        assert record["status"] == "written" and record["max_new_tokens"] == 12
        assert record["seconds"] > 0
        seconds += record["seconds"]
        got = record["media"]
        want = media[item_id]
        assert [d["position"] for d in got] == [m.position for m in want]
        assert [d["kind"] for d in got] == [m.kind for m in want]
        assert [d["label"] for d in got] == [m.label for m in want]
        assert [d["timestamp_s"] for d in got] == [m.timestamp_s for m in want]
        # A random tiny model writes nonsense, but it writes: non-empty, cleaned text.
        assert all(d["text"].strip() and d["text"] == clean(d["text"]) for d in got), got
    # The items' shares add up to the batch's generation time.
    assert seconds == pytest.approx(report.describe_s, rel=0.01, abs=1e-3)
    post, video, _single = ids
    assert [d["kind"] for d in preds[video].signals[DESCRIPTION_KEY]["media"]] == ["frame"] * 2
    assert preds[video].signals[DESCRIPTION_KEY]["media"][1]["timestamp_s"] > 0

    # Descriptions are the backend's own greedy output for each medium, batched or not.
    from storage.blobs import BlobStore
    from storage.images import open_view_image

    store = BlobStore(settings.blobs_path)
    images = [open_view_image(store, m.image_sha256) for m in media[post]]
    alone = backend.describe(images[1:2], ["image"], max_new_tokens=12)
    assert alone[0] == preds[post].signals[DESCRIPTION_KEY]["media"][1]["text"]


def test_describe_off_generates_nothing(
    settings: Settings, describe_tiny_model: Path, tmp_path: Path
) -> None:
    settings = _with_model(settings, describe_tiny_model, describe=False)
    ids = ingest_post_video_single(settings, tmp_path / "in")
    report = run_worker(
        settings, load_backend(settings.model), limit=None, batch_size=4, progress=False,
        pipeline=False,
    )  # fmt: skip
    assert (report.scored, report.described, report.describe_s) == (3, 0, 0.0)
    preds, _ = _read(settings, ids)
    assert all(DESCRIPTION_KEY not in p.signals for p in preds.values())


def test_the_demo_model_never_describes_and_says_so(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not sees_images(DEMO_MODEL_DIR)
    settings = _with_model(settings, DEMO_MODEL_DIR, describe=True)
    ids = ingest_post_video_single(settings, tmp_path / "in")
    backend = load_backend(settings.model)
    assert backend.sees_images is False
    with pytest.raises(WardenError, match="cannot see images"):
        backend.describe([], [], max_new_tokens=4)
    with caplog.at_level(logging.INFO, logger="model.worker"):
        report = run_worker(
            settings, backend, limit=None, batch_size=4, progress=False, pipeline=False
        )
    assert (report.scored, report.described, report.describe_s) == (3, 0, 0.0)
    assert not any("descriptions of" in r.getMessage() for r in caplog.records)
    preds, _ = _read(settings, ids)
    for p in preds.values():
        # No text at all: only the statement that this model cannot see images.
        assert p.signals[DESCRIPTION_KEY] == {
            "status": "unavailable",
            "reason": "cannot_see_images",
        }
    # The card says so, plainly, and shows no text.
    from app.description import description_html
    from storage.review import build_card

    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            card = build_card(s, ids[0], load_policy(settings.policy_path), blur_nsfw_threshold=0.4)
    finally:
        engine.dispose()
    markup = description_html(card.description, "en")
    assert "No description: this model cannot see images" in markup
    assert "wd-desc-text" not in markup


def test_clean_drops_control_and_bidi_characters() -> None:
    assert clean("\n\n a\x00b\x19c\u202eevil\ufffd \n\n\n\n\nnext \u200b") == "abcevil \n\nnext"
    assert len(clean("x" * 10_000)) == 4000


def test_warden_score_describe_flag_and_its_throughput_line(
    settings: Settings, describe_tiny_model: Path, tmp_path: Path
) -> None:
    """`warden score --describe` turns descriptions on over the setting (off here) and says
    what they cost on its throughput line."""
    import subprocess

    from tests.model.test_worker import WARDEN, worker_env

    settings = _with_model(settings, describe_tiny_model, describe=False)
    ids = ingest_post_video_single(settings, tmp_path / "in")
    env = worker_env(
        settings,
        WARDEN_MODEL__DESCRIBE="false",
        WARDEN_MODEL__DESCRIBE_MAX_NEW_TOKENS="6",
        WARDEN_LIMITS__VIDEO_SAMPLE_FRAMES="2",
    )
    run = subprocess.run(
        [WARDEN, "score", "--model", str(describe_tiny_model), "--describe", "--no-pipeline",
         "--no-progress", "--batch-size", "4"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "descriptions of 6 image(s)/frame(s) in" in run.stdout, run.stdout
    preds, media = _read(settings, ids)
    for item_id in ids:
        record = preds[item_id].signals[DESCRIPTION_KEY]
        assert record["max_new_tokens"] == 6
        assert len(record["media"]) == len(media[item_id])
