"""Helpers shared by the scoring worker tests: settings for a tiny model, distinct test images
ingested for real, predictions read back per item."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from storage.db import make_engine, unit_of_work
from storage.ingest import ingest_paths
from storage.models import Prediction
from storage.settings import Settings
from tests.storage._videos import encode_video

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def scoring_settings(settings: Settings, model_dir: Path) -> Settings:
    model = settings.model.model_copy(
        update={"name": str(model_dir), "device": "cpu", "dtype": "float32", "quant": "none"}
    )
    return settings.model_copy(update={"model": model})


def write_images(
    folder: Path, n: int, *, banner_text: str = "FREE CRYPTO NOW", first: int = 0
) -> list[Path]:
    """n visually distinct PNGs (different noise, so no near-duplicates); image 0 carries
    a text banner for OCR. `first` starts elsewhere in the sequence: new images each call."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + n):
        rng = np.random.default_rng(1000 + i)
        arr = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        img = Image.fromarray(arr).resize((320, 240), Image.NEAREST)
        if i == 0:
            draw = ImageDraw.Draw(img)
            draw.rectangle((0, 80, 320, 160), fill="white")
            draw.text((12, 100), banner_text, font=ImageFont.truetype(FONT, 28), fill="black")
        path = folder / f"img{i:02d}.png"
        img.save(path)
        paths.append(path)
    return paths


def ingest(settings: Settings, folder: Path, n: int, *, first: int = 0) -> list[int]:
    """Ingest n new images; their item ids in queue order (oldest first)."""
    engine = make_engine(settings.database_url, settings.db)
    try:
        report = ingest_paths(engine, settings, write_images(folder, n, first=first))
    finally:
        engine.dispose()
    ids = [r.item_id for r in report.results if r.status == "accepted"]
    assert len(ids) == n, report.summary
    return ids


def predictions_by_item(settings: Settings) -> dict[int, list[Prediction]]:
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            rows = s.scalars(select(Prediction).order_by(Prediction.id)).all()
    finally:
        engine.dispose()
    out: dict[int, list[Prediction]] = {}
    for p in rows:
        out.setdefault(p.item_id, []).append(p)
    return out


def ingest_post_video_single(settings: Settings, root: Path) -> tuple[int, int, int]:
    """A 3-image post, a 2-frame video and a single image, ingested; their item ids."""
    # img00 carries the "FREE CRYPTO NOW" banner: it is the post's 2nd image.
    paths = write_images(root, 4)
    names = [paths[1].name, paths[0].name, paths[2].name]
    (root / "posts.jsonl").write_text(json.dumps({"images": names, "text": "my weekend"}) + "\n")
    (root / "clip.mp4").write_bytes(encode_video(36, size=(96, 64), fps=12, cut=20))
    engine = make_engine(settings.database_url, settings.db)
    try:
        report = ingest_paths(engine, settings, [root / "posts.jsonl", root / "clip.mp4", paths[3]])
    finally:
        engine.dispose()
    assert [r.status for r in report.results] == ["accepted"] * 3, report.results
    post, video, single = (r.item_id for r in report.results)
    assert post and video and single
    return post, video, single
