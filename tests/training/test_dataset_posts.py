"""Posts in a built dataset, ingested for real: an exported manifest ingests back to the same
post (its images by sha256, in order, its text and labels) and a video to its frames; two posts
that share a cover are two items, a post of near-identical images with the same text is one,
and posts that share an image land in the same held-out split. A build of single images keeps
its exact data hash (tests/training/test_dataset_streaming.py pins it).

Run: WARDEN_TEST_NO_PG=1 .venv/bin/pytest tests/training/test_dataset_posts.py -q
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from storage.blobs import BlobStore
from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.ingest import ingest_paths
from storage.media import media_of
from storage.migrate import upgrade
from storage.models import Item
from storage.policy import load_policy
from storage.settings import Settings
from storage.users import create_user
from tests.model._worker_support import ingest_post_video_single, write_images
from training import cli, curation
from training.curation import CuratedItem, CuratedMedium
from training.dataset import BuildOptions, _replay_from_manifest, build_dataset, read_ledger
from training.evaluate import read_manifest

BUILD = {
    "golden_fraction": 0.0,
    "val_fraction": 0.0,
    "learn_reading": False,
    "benign_share": 0.0,
    "replay_ratio": 0.0,
    "balance_cap": 1000.0,
}


def _build(settings: Settings, out: Path, **options: object) -> dict:
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
    return info.card


def _decide(settings: Settings, labels: dict[int, list[str]]) -> None:
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(engine) as s:
            create_user(s, "mo", "correct horse battery", "moderator")
            policy = load_policy(settings.policy_path)
            for item_id, cats in labels.items():
                record_decision(
                    s, item_id=item_id, categories=cats, source="moderator", reviewer="mo",
                    policy=policy,
                )  # fmt: skip
    finally:
        engine.dispose()


def _media(settings: Settings) -> dict[int, list]:
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(engine) as s:
            return {i: media_of(s, i) for i in s.scalars(select(Item.id))}
    finally:
        engine.dispose()


def _items(out: Path, split: str) -> list[dict]:
    file = out / "data" / f"items-{split}.parquet"
    return pq.read_table(file, columns=["key", "item_id", "labels"]).to_pylist()


def test_an_exported_post_ingests_back_to_the_same_post(settings: Settings, tmp_path: Path) -> None:
    post, video, single = ingest_post_video_single(settings, tmp_path / "in")
    _decide(settings, {post: ["scam_fraud"], video: ["violence_gore"], single: []})
    before = _media(settings)
    assert len(before[post]) == 3 and len(before[video]) >= 2
    _build(settings, tmp_path / "ds")

    app = typer.Typer()
    cli.register(app)
    run = CliRunner().invoke
    export = ["dataset", "export", "--dataset", str(tmp_path / "ds"), "--out"]
    res = run(app, [*export, str(tmp_path / "export"), "--split", "train"])
    assert res.exit_code == 0 and "3 rows of ds (train)" in res.output, res.output
    manifest = tmp_path / "export" / "manifest.jsonl"
    res = run(app, [*export, str(tmp_path / "bad"), "--split", "test"])
    assert res.exit_code == 2 and "--split 'test'" in res.output
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) == 3
    by_kind = {
        ("video" if r.get("kind") else "post") if "images" in r else "single": r for r in rows
    }
    assert set(by_kind) == {"post", "video", "single"}
    assert "path" not in by_kind["post"] and len(by_kind["post"]["images"]) == 3
    assert by_kind["video"]["timestamps_s"] == [m.timestamp_s for m in before[video]]
    assert by_kind["single"]["path"].startswith("images/")

    # Ingest the export into a fresh ledger (its own database and blob store).
    url = f"sqlite:///{tmp_path / 'again.db'}"
    upgrade(url)
    again = Settings(data_dir=tmp_path / "again", WARDEN_DATABASE_URL=url)
    engine = make_engine(url)
    try:
        report = ingest_paths(engine, again, [manifest])
        assert [r.status for r in report.results] == ["accepted"] * 3, report.results
        with unit_of_work(engine) as s:
            ledger = {li.item_id: li for li in read_ledger(s)}
            items = {it.id: it for it in s.scalars(select(Item))}
            new_media = {i: media_of(s, i) for i in items}
    finally:
        engine.dispose()

    def new_item(old: int) -> int:
        # The exported files are the views the dataset holds: stored again byte for byte.
        shas = [m.image_sha256 for m in before[old]]
        found = [i for i, media in new_media.items() if [m.blob_sha256 for m in media] == shas]
        assert len(found) == 1, (old, shas)
        return found[0]

    p = new_item(post)
    assert [m.image_sha256 for m in new_media[p]] == [m.image_sha256 for m in before[post]]
    assert [m.position for m in new_media[p]] == [0, 1, 2]
    assert items[p].text == "my weekend"
    assert ledger[p].decisions[-1].categories == ("scam_fraud",)
    v = new_item(video)  # a post of the video's frames, in order
    assert [m.kind for m in new_media[v]] == ["image"] * len(before[video])
    assert ledger[v].decisions[-1].categories == ("violence_gore",)
    assert ledger[new_item(single)].decisions[-1].categories == ()

    # `warden eval` reads the same manifest: a post row is one multi-image prompt.
    evaluated = {tuple(r.media and [m.label for m in r.media]): r for r in read_manifest(manifest)}
    post_row = evaluated[("Image 1", "Image 2", "Image 3")]
    assert post_row.labels == ("scam_fraud",) and post_row.text == "my weekend"
    assert [m.image for m in post_row.media] == [
        BlobStore(settings.blobs_path).read_bytes(m.image_sha256) for m in before[post]
    ]
    frames = next(r for k, r in evaluated.items() if k and k[0].startswith("Frame 1"))
    assert [m.label for m in frames.media] == [m.label for m in before[video]]

    # As a replay manifest (--replay-manifest), a post row is the same item as in the dataset.
    replay, files = _replay_from_manifest(manifest, load_policy(settings.policy_path))
    keys = {r["item_id"]: r["key"] for r in _items(tmp_path / "ds", "train")}
    by_key = {it.key: it for it in replay}
    for old in (post, video, single):
        it = by_key[keys[old]]
        assert list(it.media_keys) == [m.image_sha256 for m in before[old]]
        for k in it.media_keys:
            assert hashlib.sha256(files[k].read_bytes()).hexdigest() == k
    assert by_key[keys[post]].text == "my weekend"
    assert [m.kind for m in by_key[keys[video]].media] == ["frame"] * len(before[video])


def _posts(settings: Settings, root: Path, posts: list[list[Path]], text: str) -> list[int]:
    """Each list of images ingested as one post with `text`; their item ids."""
    lines = [json.dumps({"images": [p.name for p in images], "text": text}) for images in posts]
    (root / "posts.jsonl").write_text("\n".join(lines) + "\n")
    engine = make_engine(settings.database_url)
    try:
        report = ingest_paths(engine, settings, [root / "posts.jsonl"])
    finally:
        engine.dispose()
    # A post whose cover is another's is a new item linked to it ("near_duplicate").
    assert all(r.status in ("accepted", "near_duplicate") for r in report.results), report
    return [r.item_id for r in report.results]


def _touched(path: Path, out: Path) -> Path:
    """The same picture with one pixel changed: other bytes, the same pHash."""
    arr = np.array(Image.open(path).convert("RGB"))
    arr[0, 0] = 255 - arr[0, 0]
    Image.fromarray(arr).save(out)
    return out


def test_posts_sharing_a_cover_are_two_items_and_near_identical_posts_one(
    settings: Settings, tmp_path: Path
) -> None:
    img = write_images(tmp_path / "in", 6)
    a, b, c, d = _posts(
        settings,
        tmp_path / "in",
        [
            [img[1], img[2], img[3]],  # the meme and its follow-ups
            [img[1], img[4], img[5]],  # the same meme, other follow-ups
            [_touched(img[1], tmp_path / "in" / "again.png"), img[2], img[3]],  # a's re-upload
            [img[2], img[1], img[3]],  # a's images in another order
        ],
        "same caption",
    )
    _decide(settings, {a: ["scam_fraud"], b: [], c: ["scam_fraud"], d: []})
    card = _build(settings, tmp_path / "ds", dedup_distance=4)
    kept = {r["item_id"] for r in _items(tmp_path / "ds", "train")}
    assert kept == {a, b, d}
    assert card["counts"]["curation"]["duplicates_dropped"] == 1


FRACTION = {"golden": "golden_fraction", "validation": "val_fraction"}


@pytest.mark.parametrize("split", ["golden", "validation"])
def test_posts_that_share_an_image_share_a_held_out_split(
    settings: Settings, tmp_path: Path, split: str
) -> None:
    img = write_images(tmp_path / "in", 8)
    a, b = _posts(settings, tmp_path / "in", [[img[1], img[2]], [img[1], img[3]]], "meme")
    engine = make_engine(settings.database_url)
    try:
        singles = [r.item_id for r in ingest_paths(engine, settings, img[4:8]).results]
        assert all(singles)
    finally:
        engine.dispose()
    _decide(settings, {a: ["scam_fraud"], b: ["scam_fraud"], **{i: [] for i in singles}})
    # The split draws half of each class: one of the two posts, which the other follows.
    card = _build(settings, tmp_path / "ds", **{FRACTION[split]: 0.5})
    held = {r["item_id"] for r in _items(tmp_path / "ds", split)}
    train = {r["item_id"] for r in _items(tmp_path / "ds", "train")}
    assert {a, b} <= held and not {a, b} & train
    assert len(held & set(singles)) == 2 and card["counts"]["items"][split] == 4
    assert len(train) == 2


def _item(key: str, media: list[str], phash: list[str | None] | None = None) -> CuratedItem:
    return CuratedItem(
        key=curation.media_key(media) if len(media) > 1 else key,
        item_id=None,
        labels=(),
        ocr_text="",
        text="t",
        media=tuple(CuratedMedium(key=k, position=n) for n, k in enumerate(media))
        if len(media) > 1
        else (),
        media_phash=tuple(phash or ()),
    )


def test_linked_follows_shared_images_and_leaves_single_images_alone() -> None:
    x, y, z = _item("x", ["x"]), _item("", ["x", "y"]), _item("", ["y", "q"])
    w = _item("w", ["w"])
    assert curation.linked([x, y, z, w], {"x"}) == {"x", y.key, z.key}
    assert curation.linked([x, y, z, w], {z.key}) == {"x", y.key, z.key}
    assert curation.linked([x, w], {"w"}) == {"w"}
    # A golden image of an earlier build (not an item here) pulls the post that holds it.
    assert curation.linked([y, w], {"q"}) == set()
    assert curation.linked([z, w], {"q"}) == {z.key}


@pytest.mark.parametrize("distance", [0, 4])
def test_dedup_compares_posts_medium_by_medium(distance: int) -> None:
    a = _item("", ["c", "f1"], ["0" * 16, "f" * 16])
    b = _item("", ["c", "f2"], ["0" * 16, "0" * 16])  # shares the cover only
    c = _item("", ["c2", "f1"], ["0" * 15 + "1", "f" * 16])  # cover one bit away
    kept, dropped = curation.dedup([a, b, c], max_distance=distance, golden=set())
    assert [it.key for it in kept] == ([a.key, b.key, c.key] if distance < 4 else [a.key, b.key])
    assert dropped == ({} if distance < 4 else {c.key: a.key})
