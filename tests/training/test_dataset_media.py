"""`warden dataset build` over posts and videos: a 3-image post and an MP4 video ingested for
real, scored by the real worker (tiny InternVL, RapidOCR), decided, built into a dataset. Each
item is one row carrying every medium in order (frames with their timestamps); its SFT prompt
is the scorer's multi-image prompt, text and token ids; a box on image 2 of the post gives a
grounding row about image 2; the image limit caps what a row keeps; a single image builds as
before.

Run: WARDEN_TEST_NO_PG=1 .venv/bin/pytest tests/training/test_dataset_media.py -q
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from sqlalchemy import select

from model.loading import load_backend
from model.media import build_input, decode_and_signal
from model.scoring import render_prompt_parts
from model.worker import run_worker
from storage.blobs import BlobStore
from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.media import Medium, media_of
from storage.models import Item, Prediction
from storage.policy import Policy, load_policy
from storage.settings import DEFAULT_POLICY, Settings
from storage.users import create_user
from tests.model._worker_support import ingest_post_video_single, scoring_settings
from training.dataset import (
    SCHEMA_VERSION,
    BuildOptions,
    _copy_replay_images,
    _replay_from_dataset,
    build_dataset,
    load_trl_split,
    read_card,
    row_images,
    row_input,
)
from training.evaluate import evaluate_backend, read_dataset
from training.posttrain import PostTrainConfig, post_train, to_text_rows

BUILD = {
    "golden_fraction": 0.0,
    "val_fraction": 0.0,
    "learn_reading": False,
    "benign_share": 0.0,
    "replay_ratio": 0.0,
    "balance_cap": 1000.0,
    "dedup_distance": 0,
}


@pytest.fixture(scope="module")
def media_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("media-tiny") / "internvl", "internvl", seed=0)


def _policy_file(folder: Path) -> Path:
    """The default policy with the restricted category's threshold out of a random model's
    reach: a tiny model's scores over it would (rightly) keep its items out of training."""
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    head, sep, tail = text.partition("id: child_safety")
    tail = tail.replace("threshold: 0.3", "threshold: 0.999", 1)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.yaml").write_text(head + sep + tail, encoding="utf-8")
    return folder / "policy.yaml"


def _build(settings: Settings, out: Path, **options: object) -> Path:
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(engine) as s:
            info = build_dataset(
                s, out, load_policy(settings.policy_path),
                read_image=BlobStore(settings.blobs_path).read_bytes,
                options=BuildOptions(**{**BUILD, **options}),  # type: ignore[arg-type]
            )  # fmt: skip
    finally:
        engine.dispose()
    return Path(info.path)


def _rows(out: Path, name: str) -> list[dict]:
    return pq.read_table(out / "data" / f"{name}.parquet").to_pylist()


def _text(messages_json: str) -> str:
    return json.loads(messages_json)[0]["content"][0]["text"]


@dataclass
class Scored:
    """A scored, decided ledger: a post, a video and a single image, with what the worker
    stored for them."""

    settings: Settings
    backend: Any
    policy: Policy
    post: int
    video: int
    single: int
    media: dict[int, list[Medium]]
    texts: dict[int, str | None]
    scores: dict[int, dict[str, float]]


def _scored_ledger(settings: Settings, model_dir: Path, tmp_path: Path) -> Scored:
    settings = scoring_settings(settings, model_dir)
    settings = settings.model_copy(
        update={
            "limits": settings.limits.model_copy(update={"video_sample_frames": 3}),
            "policy_path": _policy_file(tmp_path / "policy"),
        }
    )
    post, video, single = ingest_post_video_single(settings, tmp_path / "in")
    backend = load_backend(settings.model)
    policy = load_policy(settings.policy_path)
    report = run_worker(
        settings, backend, limit=None, batch_size=4, progress=False, pipeline=False,
        signal_procs=1,
    )  # fmt: skip
    assert (report.scored, report.failed) == (3, 0), report.errors

    engine = make_engine(settings.database_url, settings.db)
    with unit_of_work(engine) as s:
        create_user(s, "mo", "correct horse battery", "moderator")
        media = {i: media_of(s, i) for i in (post, video, single)}
        texts = {i.id: i.text for i in s.scalars(select(Item))}
        scores = {p.item_id: p.scores for p in s.scalars(select(Prediction))}
        for item_id, cats in ((video, ["violence_gore"]), (single, [])):
            record_decision(
                s, item_id=item_id, categories=cats, source="moderator", reviewer="mo",
                policy=policy,
            )  # fmt: skip
        # An annotator's boxes (as a Label Studio pull stores them): two on image 2 of the
        # post (pixels of its 320 x 240 view), one on the cover, one on an image it lacks.
        w, h = media[post][1].image_size or (0, 0)
        assert (w, h) == (320, 240)
        regions = [
            {"position": 1, "category": "scam_fraud", "box": [0, 80, 320, 160],
             "image_size": [w, h], "source": "label_studio", "ls_id": "a"},
            {"position": 1, "category": "scam_fraud", "box": [32, 24, 64, 48],
             "image_size": [w, h], "source": "label_studio", "ls_id": "b"},
            {"position": 0, "category": "scam_fraud", "box": [160, 120, 400, 240],
             "image_size": [w, h], "source": "label_studio", "ls_id": "c"},
            {"position": 7, "category": "scam_fraud", "box": [0, 0, 10, 10],
             "image_size": [w, h], "source": "label_studio", "ls_id": "d"},
        ]  # fmt: skip
        record_decision(
            s, item_id=post, categories=["scam_fraud"], source="label_studio",
            reviewer="ann@warden.test", policy=policy,
            external_ref="ls:1:1:2026-12-01T00:00:00.000000Z", meta={"regions": regions},
        )  # fmt: skip
    engine.dispose()
    assert len(media[post]) == 3 and [m.kind for m in media[video]] == ["frame"] * 3
    return Scored(settings, backend, policy, post, video, single, media, texts, scores)


def _check_rows(ledger: Scored, out: Path, items: dict[int, dict]) -> None:
    """One row per item, every medium in order: the bytes of each view, labelled as the scorer
    labels it, with its own OCR text; the cover stays in `image`."""
    post, video, single, media = ledger.post, ledger.video, ledger.single, ledger.media
    for item_id in (post, video):
        r, ms = items[item_id], media[item_id]
        got = [hashlib.sha256(b).hexdigest() for b in row_images(r)]
        assert got == [m.image_sha256 for m in ms]
        assert r["image"]["bytes"] == r["images"][0]["bytes"]
        assert [m["label"] for m in r["media"]] == [m.label for m in ms]
        assert [m["ocr_text"] for m in r["media"]] == [m.ocr_text or "" for m in ms]
    assert [m["label"] for m in items[post]["media"]] == ["Image 1", "Image 2", "Image 3"]
    assert "FREE" in items[post]["media"][1]["ocr_text"]
    # The video's frames carry their timestamps (and say so in their labels).
    frames = items[video]["media"]
    assert [f["kind"] for f in frames] == ["frame"] * 3
    assert [f["timestamp_s"] for f in frames] == [m.timestamp_s for m in media[video]]
    assert frames[0]["label"].startswith("Frame 1 (") and frames[0]["label"].endswith(" s)")
    assert len({f["timestamp_s"] for f in frames}) == 3
    # A single image: its one image, no media list (as before media existed).
    assert items[single]["images"] == [] and items[single]["media"] == []
    assert row_images(items[single]) == [items[single]["image"]["bytes"]]
    card = read_card(out)
    assert card["schema_version"] == SCHEMA_VERSION == 2
    assert card["counts"]["media"] == {"train": 2, "validation": 0, "golden": 0, "media": 6}
    assert "Items of several media" in (out / "README.md").read_text()


def _check_train_serve(ledger: Scored, out: Path, items: dict[int, dict]) -> None:
    """The SFT row's prompt, rendered by post-training, is the text the scorer renders for that
    item (its input built by the worker's own code from the stored views), and its token ids
    and pixels are the same."""
    backend, policy = ledger.backend, ledger.policy
    loaded = load_trl_split(out, "sft", "train")
    store = BlobStore(ledger.settings.blobs_path)
    processor = backend.processor
    cat_index = {c: k for k, c in enumerate(policy.ids)}
    for item_id in (ledger.post, ledger.video, ledger.single):
        ms = ledger.media[item_id]
        images, signals = decode_and_signal(
            store, [m.image_sha256 for m in ms], ocr=True, nsfw=True,
            engine=ledger.settings.model.ocr_engine,
        )  # fmt: skip
        labels = [m.label for m in ms]
        inp = build_input(item_id, ledger.texts[item_id], images, signals, labels, ocr_hint=True)
        inp = backend.read(inp)
        # The very input the worker scored: its recorded scores are this input's.
        [want] = backend.raw_scores([inp], policy)
        assert ledger.scores[item_id] == pytest.approx(want, abs=1e-5)
        parts = render_prompt_parts(
            processor, policy, text=inp.text, ocr_text=inp.ocr_text, layout=backend.layout,
            media_ocr=inp.media_ocr,
        )  # fmt: skip
        rows = [r for r in loaded if r["key"] == items[item_id]["key"]]
        assert {r["category"] for r in rows} == set(policy.ids)
        rendered = to_text_rows(rows, processor)
        for r, t in zip(rows, rendered, strict=True):
            assert t["prompt"] == parts.prefix + parts.suffixes[cat_index[r["category"]]]
            assert len(t["images"]) == len(ms)
        serve_text = parts.prefix + parts.suffixes[cat_index[rows[0]["category"]]]
        serve = processor(text=[serve_text], images=[inp.images], return_tensors="pt")
        t = rendered[0]
        train = processor(text=[t["prompt"]], images=[t["images"]], return_tensors="pt")
        assert torch.equal(serve["input_ids"], train["input_ids"])
        assert torch.equal(serve["pixel_values"], train["pixel_values"])
        # Scoring the items row (checkpoint choice scores validation so) is scoring the item.
        from_row = row_input(items[item_id])
        assert from_row.media_ocr == inp.media_ocr and len(from_row.images) == len(ms)
        assert backend.raw_scores([from_row], policy)[0] == pytest.approx(want, abs=1e-5)
        if item_id == ledger.post:
            assert 'Image 2 text: "' in t["prompt"] and 'Text: "my weekend"' in t["prompt"]
            assert serve["pixel_values"].shape[0] >= 3  # every image's tiles, not the cover's


def _question_about(row: dict) -> str:
    """Which image a grounding row's question asks about ("Image 2", "the image")."""
    text = json.loads(row["prompt"])[1]["content"][-1]["text"]
    return text.split("Where in ")[1].split(" is the content")[0]


def _check_grounding(ledger: Scored, out: Path, items: dict[int, dict]) -> None:
    """The box on image 2 gives a row about image 2, in its coordinates (0-1000 of 320 x 240;
    both boxes), with the post's three images; the cover's box its own row (clamped to the
    image); the box on an image the post lacks, none."""
    key = items[ledger.post]["key"]
    ground = _rows(out, "grounding-train")
    assert {r["key"] for r in ground} == {key}
    by_image = {_question_about(r): r for r in ground}
    assert set(by_image) == {"Image 1", "Image 2"}
    two = by_image["Image 2"]
    assert _text(two["completion"]) == (
        "<ref>scam_fraud</ref><box>[[0, 333, 1000, 667], [100, 100, 200, 200]]</box>"
    )
    assert [b["position"] for b in json.loads(two["boxes"])] == [1, 1]
    assert _text(by_image["Image 1"]["completion"]) == (
        "<ref>scam_fraud</ref><box>[[500, 500, 1000, 1000]]</box>"
    )
    assert "position" not in json.loads(by_image["Image 1"]["boxes"])[0]
    prompt = json.loads(two["prompt"])
    assert [c["type"] for c in prompt[1]["content"]] == ["image"] * 3 + ["text"]
    # The grounding prompt is the SFT prompt with another question: same context, same images.
    sft_post = json.loads(next(r for r in _rows(out, "sft-train") if r["key"] == key)["prompt"])
    context = sft_post[1]["content"][-1]["text"].split("\nPolicy category")[0]
    assert prompt[1]["content"][-1]["text"].startswith(context + "\nPolicy category scam_fraud")
    assert read_card(out)["counts"]["grounding"]["train"] == 2
    views = [Image.open(io.BytesIO(b)).convert("RGB") for b in row_images(items[ledger.post])]
    for r in load_trl_split(out, "grounding", "train"):
        assert [im.tobytes() for im in r["images"]] == [im.tobytes() for im in views]


def test_posts_and_videos_build_rows_with_every_medium_and_the_scorers_prompt(
    settings: Settings, media_tiny_model: Path, tmp_path: Path
) -> None:
    ledger = _scored_ledger(settings, media_tiny_model, tmp_path)
    post, video = ledger.post, ledger.video
    out = _build(ledger.settings, tmp_path / "ds")
    items = {r["item_id"]: r for r in _rows(out, "items-train")}
    assert set(items) == {post, video, ledger.single}
    _check_rows(ledger, out, items)
    _check_train_serve(ledger, out, items)
    _check_grounding(ledger, out, items)

    # Replay from this build: a post's media come back with it, bytes included.
    replayed = {it.key: it for it in _replay_from_dataset(out)}
    labels = [m.label for m in replayed[items[post]["key"]].media]
    assert labels == ["Image 1", "Image 2", "Image 3"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    files = _copy_replay_images(out, {items[post]["key"]}, scratch)
    got = {k: hashlib.sha256(f.read_bytes()).hexdigest() for k, f in files.items()}
    assert got == {m.image_sha256: m.image_sha256 for m in ledger.media[post]}
    _check_evaluation(ledger, tmp_path)


def _check_evaluation(ledger: Scored, tmp_path: Path) -> None:
    """Golden rows of posts and videos are evaluated (the promotion gate's `warden eval
    --dataset`) as the worker scored the items: one prompt with every medium."""
    golden = _build(ledger.settings, tmp_path / "golden", golden_fraction=1.0)
    rows, _ = read_dataset(golden, "golden", ledger.policy)
    assert sorted(len(r.media) for r in rows) == [0, 3, 3]
    report = evaluate_backend(ledger.backend, ledger.policy, rows, ocr="manifest")
    # A row's key is its item's (a post's or video's: its ordered media, not its cover).
    keys = {r["key"]: r["item_id"] for r in _rows(golden, "items-golden")}
    for p in report.predictions:
        item_id = keys[p["id"]]
        assert p["scores"] == pytest.approx(ledger.scores[item_id], abs=1e-3), item_id
    assert report.ocr_sources == {"manifest": 3}


def test_the_image_limit_caps_what_a_row_keeps(
    sqlite_settings: Settings, media_tiny_model: Path, tmp_path: Path
) -> None:
    ledger = _scored_ledger(sqlite_settings, media_tiny_model, tmp_path)
    post, video, settings = ledger.post, ledger.video, ledger.settings
    # A post keeps its first 2 images, a video its first 2 frames (counted), and the prompt
    # shows as many.
    capped = _build(settings, tmp_path / "ds2", max_images=2, max_frames=2)
    rows = {r["item_id"]: r for r in _rows(capped, "items-train")}
    key = rows[post]["key"]
    assert [m["label"] for m in rows[post]["media"]] == ["Image 1", "Image 2"]
    assert len(rows[video]["images"]) == 2
    assert read_card(capped)["counts"]["curation"]["media_truncated"] == 2
    sft = [json.loads(r["prompt"]) for r in _rows(capped, "sft-train") if r["key"] == key]
    assert sft and all([c["type"] for c in p[1]["content"]].count("image") == 2 for p in sft)
    assert {_question_about(r) for r in _rows(capped, "grounding-train")} == {"Image 1", "Image 2"}

    # Post-training reads these rows: each prompt's images, as many as it has placeholders,
    # through the SFT stage (grounding rows included) of a short run on the same tiny model.
    cfg = PostTrainConfig(method="sft", lr=1e-3, max_steps=2, batch_size=4, logging_steps=1)
    res = post_train(str(ledger.backend.plan.path), capped, tmp_path / "run", cfg,
                     policy=ledger.policy)  # fmt: skip
    losses = res.metrics["sft"]["losses"]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), losses
    assert res.metrics["grounding"]["status"] == "trained", res.metrics["grounding"]
    assert res.metrics["sft"]["grounding_rows"] == 2, res.metrics["sft"]

    # Capped at one image, a post is the N = 1 case: no media columns at all (the files of a
    # build of single images), its OCR hint the cover's (the banner is on image 2, which the
    # row no longer shows), and only the cover's boxes give a row.
    one = _build(settings, tmp_path / "ds3", max_images=1, max_frames=1)
    assert "images" not in pq.read_table(one / "data" / "items-train.parquet").column_names
    key = next(r["key"] for r in _rows(one, "items-train") if r["item_id"] == post)
    assert key == ledger.media[post][0].image_sha256  # keyed by its cover, as one image is
    users = [
        json.loads(r["prompt"])[1]["content"] for r in _rows(one, "sft-train") if r["key"] == key
    ]
    assert users and all([c["type"] for c in u] == ["image", "text"] for u in users)
    assert all('\nOCR: "' in u[-1]["text"] and "Image 2" not in u[-1]["text"] for u in users)
    assert not any("FREE" in u[-1]["text"] for u in users)
    ground = _rows(one, "grounding-train")
    assert [_question_about(r) for r in ground] == ["the image"]
    assert (
        _text(ground[0]["completion"]) == "<ref>scam_fraud</ref><box>[[500, 500, 1000, 1000]]</box>"
    )
