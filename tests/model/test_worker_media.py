"""Items of several media through the real scoring worker: a 3-image post and an MP4 video
(encoded with PyAV) are each scored as ONE prompt with all their media, their OCR labelled per
image, per-medium evidence recorded in the prediction, per-medium OCR/NSFW on the media rows;
a single image stays exactly the N = 1 case. Real ingest, tiny InternVL, RapidOCR, NSFW.

Run: .venv/bin/pytest tests/model/test_worker_media.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from model.backends import MediumInput, ScoringInput
from model.loading import load_backend
from model.worker import run_worker
from storage.blobs import BlobStore
from storage.db import make_engine, unit_of_work
from storage.images import open_view_image
from storage.media import media_of
from storage.models import Item, Prediction
from storage.policy import load_policy
from storage.settings import Settings
from tests.model._worker_support import (
    ingest_post_video_single,
    scoring_settings,
)


@pytest.fixture(scope="module")
def media_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("media-tiny") / "internvl", "internvl", seed=0)


@pytest.mark.parametrize("pipeline", [False, True])
def test_post_and_video_are_scored_as_one_prompt_with_evidence(
    settings: Settings, media_tiny_model: Path, tmp_path: Path, pipeline: bool
) -> None:
    settings = scoring_settings(settings, media_tiny_model)
    settings = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"video_sample_frames": 3})}
    )
    post, video, single = ingest_post_video_single(settings, tmp_path / "in")
    backend = load_backend(settings.model)
    policy = load_policy(settings.policy_path)
    report = run_worker(
        settings, backend, limit=None, batch_size=4, progress=False, pipeline=pipeline,
        signal_procs=1,
    )  # fmt: skip
    assert (report.scored, report.failed) == (3, 0), report.errors

    engine = make_engine(settings.database_url, settings.db)
    store = BlobStore(settings.blobs_path)
    with unit_of_work(engine) as s:
        preds = {p.item_id: p for p in s.scalars(select(Prediction))}
        post_media = media_of(s, post)
        video_media = media_of(s, video)
        texts = {i.id: i.text for i in s.scalars(select(Item))}
    engine.dispose()

    # Per-medium OCR and NSFW on the media rows; the banner is read on the 2nd image only.
    assert "FREE" in (post_media[1].ocr_text or "")
    assert "FREE" not in (post_media[0].ocr_text or "")
    assert all(m.nsfw_score is not None for m in post_media + video_media)
    # The item's OCR text names the image it came from.
    p = preds[post]
    assert "Image 2 text: " in (p.ocr_text or "") and "FREE" in (p.ocr_text or "")
    assert p.signals["media_nsfw"] == [m.nsfw_score for m in post_media]

    # ONE prompt with all three images and their labelled OCR: the recorded scores are the
    # scores of that input, and not those of the cover alone.
    images = [open_view_image(store, m.image_sha256) for m in post_media]
    media = tuple(
        MediumInput(img, m.ocr_text, m.label) for img, m in zip(images, post_media, strict=True)
    )
    together = ScoringInput(images[0], text=texts[post], ocr_text=p.ocr_text, media=media)
    [want] = backend.raw_scores([together], policy)
    assert p.scores == pytest.approx(want, abs=1e-5)
    [cover_only] = backend.raw_scores(
        [ScoringInput(images[0], text=texts[post], ocr_text=post_media[0].ocr_text)], policy
    )
    assert p.scores != pytest.approx(cover_only, abs=1e-5)

    # Per-medium evidence: each image scored alone; the driver of each category is the
    # image with the highest of those scores.
    ev = p.signals["media_evidence"]
    alone = backend.raw_scores(together.single_media(), policy)
    assert [m["label"] for m in ev["media"]] == ["Image 1", "Image 2", "Image 3"]
    for k, scores in enumerate(alone):
        assert ev["media"][k]["scores"] == pytest.approx(scores, abs=1e-3)
    for cid in policy.ids:
        assert ev["by_category"][cid] == max(range(3), key=lambda k: alone[k][cid])
    assert set(ev["flagged_by"]) == set(p.flagged)

    # The video: its sampled frames, labelled with their timestamps.
    v = preds[video]
    assert [m.kind for m in video_media] == ["frame"] * 3
    labels = [m["label"] for m in v.signals["media_evidence"]["media"]]
    assert labels == [m.label for m in video_media] and labels[0].startswith("Frame 1 (")

    # A single image: no evidence pass, its OCR text unlabelled, as before media existed.
    one = preds[single]
    assert "media_evidence" not in one.signals and "media_nsfw" not in one.signals
    assert not (one.ocr_text or "").startswith("Image 1")
