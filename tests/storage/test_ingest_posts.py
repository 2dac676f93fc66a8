"""Posts of several images through `warden ingest`: one item, N media in order, one decision;
a bad image rejects the whole post by name and stores nothing (no item, no media rows)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.blobs import BlobStore
from storage.db import make_engine
from storage.images import open_view_image
from storage.ingest import ingest_paths
from storage.media import media_of
from storage.models import Blob, Decision, Item, ItemMedium
from storage.posts import POST_MIME
from storage.settings import Settings
from tests.storage.hostile_corpus import _photo, assert_store_consistent, encode, png_declaring


def _post_folder(root: Path, n: int, *, seed: int = 0) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        name = f"img{seed}_{i}.png"
        (root / name).write_bytes(encode(_photo(seed * 100 + i), "PNG"))
        names.append(name)
    return names


def _manifest(root: Path, rows: list[dict[str, object]]) -> Path:
    path = root / "posts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _counts(engine: object) -> tuple[int, int]:
    with Session(engine) as s:  # type: ignore[arg-type]
        items = int(s.scalar(select(func.count()).select_from(Item)) or 0)
        media = int(s.scalar(select(func.count()).select_from(ItemMedium)) or 0)
    return items, media


def test_three_image_post_is_one_item_with_three_media(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "in"
    names = _post_folder(root, 3)
    single = _post_folder(root, 1, seed=7)
    manifest = _manifest(
        root,
        [
            {"images": names, "text": "three pictures", "labels": ["scam_fraud"]},
            {"path": single[0], "text": "one picture"},
        ],
    )
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [manifest])
    assert [r.status for r in report.results] == ["accepted", "accepted"], report.results
    post, one = report.results
    store = BlobStore(settings.blobs_path)
    with Session(engine) as s:
        item = s.get(Item, post.item_id)
        assert item is not None and item.text == "three pictures"
        media = media_of(s, item.id)
        assert [m.position for m in media] == [0, 1, 2]
        assert [m.kind for m in media] == ["image"] * 3
        for m, name in zip(media, names, strict=True):
            assert store.read_bytes(m.blob_sha256) == (root / name).read_bytes()
            assert open_view_image(store, m.view_sha256 or "").size == (160, 120)
        # The cover is the item's own view; the identity blob lists the post's media.
        assert item.view_sha256 == media[0].view_sha256
        blob = s.get(Blob, item.blob_sha256)
        assert blob is not None and blob.mime == POST_MIME
        listed = json.loads(store.read_bytes(item.blob_sha256))["media"]
        assert listed == [m.blob_sha256 for m in media]
        # One decision over the whole post.
        decisions = s.scalars(select(Decision).where(Decision.item_id == item.id)).all()
        assert [d.categories for d in decisions] == [["scam_fraud"]]
        # A single image is the N = 1 case: one media row, its own bytes as the item's blob.
        single_item = s.get(Item, one.item_id)
        assert single_item is not None
        single_media = media_of(s, single_item.id)
        assert [(m.position, m.blob_sha256) for m in single_media] == [(0, single_item.blob_sha256)]
        assert s.scalar(select(func.count()).select_from(ItemMedium)) == 4

    # The same post again is a duplicate; the same images in another order is another post.
    again = _manifest(root, [{"images": names}, {"images": list(reversed(names))}])
    report = ingest_paths(engine, settings, [again])
    assert [r.status for r in report.results] == ["duplicate", "accepted"]
    assert report.results[0].duplicate_of == post.item_id
    assert assert_store_consistent(engine, settings)["items"] == 3
    engine.dispose()


def test_bad_third_image_rejects_the_post_and_stores_nothing(
    tmp_path: Path, settings: Settings
) -> None:
    root = tmp_path / "in"
    names = _post_folder(root, 4)
    (root / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    good = encode(_photo(3), "PNG")
    (root / "cut.png").write_bytes(good[: len(good) // 2])
    rows = [
        {"images": [names[0], names[1], "bomb.png", names[3]], "text": "bomb third"},
        {"images": [names[0], names[1], "cut.png"], "text": "truncated third"},
        {"images": [names[0], "missing.png"]},
        {"images": [names[0], "../escape.png"]},
    ]
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [_manifest(root, rows)])
    assert [r.status for r in report.results] == ["rejected"] * 4, report.results
    reasons = [r.reason or "" for r in report.results]
    assert reasons[0].startswith("image 3 (bomb.png): ") and "bomb" in reasons[0]
    assert reasons[1].startswith("image 3 (cut.png): ")
    assert "image 2 (missing.png)" in reasons[2]
    assert "image 2 (../escape.png)" in reasons[3]
    assert _counts(engine) == (0, 0)
    assert assert_store_consistent(engine, settings) == {"items": 0, "blobs": 0}
    engine.dispose()


def test_images_per_post_limit(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "in"
    names = _post_folder(root, 4)
    limited = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_images_per_post": 3})}
    )
    assert Settings().limits.max_images_per_post == 10
    engine = make_engine(settings.database_url)
    report = ingest_paths(
        engine, limited, [_manifest(root, [{"images": names}, {"images": names[:3]}])]
    )
    assert [r.status for r in report.results] == ["rejected", "accepted"]
    assert "post has 4 images; the limit is 3" in (report.results[0].reason or "")
    assert _counts(engine) == (1, 3)
    engine.dispose()


def test_csv_images_column(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "in"
    names = _post_folder(root, 2)
    (root / "posts.csv").write_text(f'images,text\n"{names[0]};{names[1]}",caption\n')
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [root / "posts.csv"])
    assert [r.status for r in report.results] == ["accepted"], report.results
    assert _counts(engine) == (1, 2)
    engine.dispose()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_a_zip_with_a_manifest_carries_posts_and_text(tmp_path: Path, settings: Settings) -> None:
    """The browser uploads one file: a zip whose top-level manifest.jsonl names its members
    (posts, text, labels); members no row names are ingested as plain images."""
    imgs = {f"p/img{i}.png": encode(_photo(300 + i), "PNG") for i in range(4)}
    rows = [
        {"images": ["p/img0.png", "./p/img1.png", "p/img2.png"], "text": "three in a zip"},
        {"path": "p/img3.png", "text": "one with text", "labels": ["drugs"]},
    ]
    loose = encode(_photo(399), "PNG")
    manifest = "".join(json.dumps(r) + "\n" for r in rows).encode()
    archive = _zip(tmp_path / "posts.zip", {**imgs, "manifest.jsonl": manifest, "loose.png": loose})
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [archive])
    assert [r.status for r in report.results] == ["accepted"] * 3, report.results
    post, one, plain = report.results
    store = BlobStore(settings.blobs_path)
    with Session(engine) as s:
        item = s.get(Item, post.item_id)
        assert item is not None and item.text == "three in a zip"
        media = media_of(s, item.id)
        assert [store.read_bytes(m.blob_sha256) for m in media] == [
            imgs["p/img0.png"],
            imgs["p/img1.png"],
            imgs["p/img2.png"],
        ]
        single = s.get(Item, one.item_id)
        assert single is not None and single.text == "one with text"
        assert [d.categories for d in s.scalars(select(Decision))] == [["drugs"]]
        other = s.get(Item, plain.item_id)
        assert other is not None and store.read_bytes(other.blob_sha256) == loose
    assert _counts(engine) == (3, 5)


def test_a_zip_manifest_cannot_reach_outside_its_archive(
    tmp_path: Path, settings: Settings
) -> None:
    """Rows that climb out ('..'), are absolute, or name no member are refused with the reason;
    a post with one bad image is refused whole, by the image's name; nothing is half-stored."""
    secret = tmp_path / "secret.png"
    secret.write_bytes(encode(_photo(500), "PNG"))
    good = encode(_photo(501), "PNG")
    rows = [
        {"path": "../secret.png"},
        {"path": str(secret)},
        {"path": "missing.png"},
        {"images": ["ok.png", "broken.png"], "text": "post with a bad image"},
    ]
    archive = _zip(
        tmp_path / "hostile.zip",
        {
            "manifest.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode(),
            "ok.png": good,
            "broken.png": b"\x89PNG\r\n\x1a\nnot really a png",
        },
    )
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [archive])
    reasons = [(r.status, r.reason or "") for r in report.results]
    assert reasons[0][0] == "rejected" and "'..' is not allowed" in reasons[0][1], reasons
    assert reasons[1][0] == "rejected" and "absolute paths" in reasons[1][1], reasons
    assert reasons[2][0] == "rejected" and "not in the archive" in reasons[2][1], reasons
    assert reasons[3][0] == "rejected" and "broken.png" in reasons[3][1], reasons
    # The post's good image was named by its row, so it is not ingested on its own either.
    assert len(reasons) == 4, reasons
    assert _counts(engine) == (0, 0)
    assert_store_consistent(engine, settings)
