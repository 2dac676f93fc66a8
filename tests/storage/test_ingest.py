"""`ingest_paths` and `warden ingest` on SQLite and PostgreSQL: formats, duplicates, near
duplicates, the hash bank, imported ground truth, the CLI contract, and aborting on DB errors."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from storage import ingest_cli
from storage.blobs import BlobStore
from storage.db import make_engine
from storage.errors import WardenError
from storage.images import open_view_image
from storage.ingest import IngestAborted, ingest_paths
from storage.models import AuditEvent, Blob, Decision, HashBankEntry, Item
from storage.settings import Settings, get_settings
from tests.storage.hostile_corpus import _photo, assert_store_consistent, encode


def _formats_folder(root: Path) -> dict[str, tuple[str, tuple[int, int]]]:
    """One file per supported format/mode; name -> (mime, original size)."""
    root.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [_photo(60, (48, 40)), _photo(61, (48, 40))]
    deep = np.asarray(_photo(64, (64, 48)).convert("L")).astype(np.uint16) * 257  # 16-bit
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=50)
    files = {
        # Names lie about the format on purpose: detection is by content.
        "rotated.jpg": (encode(_photo(62, (120, 80)), "JPEG", exif=exif), "image/jpeg"),
        "cmyk.jpg": (encode(_photo(63, (64, 64)).convert("CMYK"), "JPEG"), "image/jpeg"),
        "deep.png": (encode(Image.fromarray(deep), "PNG"), "image/png"),
        "palette.png": (encode(_photo(65).convert("P"), "PNG", transparency=0), "image/png"),
        "alpha.png": (encode(_photo(66).convert("RGBA"), "PNG"), "image/png"),
        "anim.gif": (gif.getvalue(), "image/gif"),
        "photo.webp": (encode(_photo(67), "WEBP"), "image/webp"),
        "photo.bmp": (encode(_photo(68), "BMP"), "image/bmp"),
        "photo.tif": (encode(_photo(69), "TIFF"), "image/tiff"),
        "actually_png.jpg": (encode(_photo(70), "PNG"), "image/png"),
    }
    out = {}
    for name, (data, mime) in files.items():
        (root / name).write_bytes(data)
        out[name] = (mime, Image.open(io.BytesIO(data)).size)
    return out


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_formats_are_stored_with_a_view(tmp_path: Path, settings: Settings) -> None:
    expected = _formats_folder(tmp_path / "in")
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [tmp_path / "in"], source="fmt")
    by_name = {Path(r.path).name: r for r in report.results}
    assert {r.status for r in report.results} == {"accepted"}, report.results
    store = BlobStore(settings.blobs_path)
    with Session(engine) as s:
        for name, (mime, size) in expected.items():
            item = s.get(Item, by_name[name].item_id)
            assert item is not None and item.source == "fmt" and item.status == "queued"
            blob = s.get(Blob, item.blob_sha256)
            assert blob is not None and (blob.mime, (blob.width, blob.height)) == (mime, size)
            assert store.read_bytes(item.blob_sha256) == (tmp_path / "in" / name).read_bytes()
            view = open_view_image(store, item.view_sha256 or "")
            assert view.mode == "RGB"
            want = (size[1], size[0]) if name == "rotated.jpg" else size
            assert view.size == want, name
            assert item.animated == (name == "anim.gif")
            assert item.phash and len(item.phash) == 16
        events = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "ingest")
        )
    assert events == len(expected)
    assert assert_store_consistent(engine, settings)["items"] == len(expected)
    engine.dispose()


def test_duplicates_and_near_duplicates(tmp_path: Path, settings: Settings) -> None:
    src = tmp_path / "a"
    src.mkdir()
    original = _photo(80, (400, 300))
    (src / "orig.jpg").write_bytes(encode(original, "JPEG", quality=92))
    (src / "other.png").write_bytes(encode(_photo(81, (400, 300)), "PNG"))
    engine = make_engine(settings.database_url)
    first = ingest_paths(engine, settings, [src])
    orig_id = next(r.item_id for r in first.results if r.path.endswith("orig.jpg"))

    later = tmp_path / "b"
    later.mkdir()
    (later / "copy.jpg").write_bytes((src / "orig.jpg").read_bytes())
    (later / "smaller.png").write_bytes(encode(original.resize((200, 150)), "PNG"))
    second = ingest_paths(engine, settings, [later, src / "orig.jpg"])
    by_name = {Path(r.path).name: r for r in second.results}
    assert by_name["copy.jpg"].status == "duplicate"
    assert by_name["copy.jpg"].duplicate_of == orig_id and by_name["copy.jpg"].item_id is None
    assert by_name["orig.jpg"].status == "duplicate"
    near = by_name["smaller.png"]
    assert near.status == "near_duplicate" and near.duplicate_of == orig_id
    assert near.distance is not None and near.distance <= settings.limits.near_duplicate_distance
    with Session(engine) as s:
        item = s.get(Item, near.item_id)
        assert item is not None
        assert (item.near_duplicate_of_id, item.near_duplicate_distance) == (
            orig_id,
            near.distance,
        )
    assert _count(engine, Item) == 3

    # A negative distance turns near-duplicate detection off: an inexact copy is a new item.
    strict = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"near_duplicate_distance": -1})}
    )
    (later / "smaller2.png").write_bytes(encode(original.resize((180, 135)), "PNG"))
    third = ingest_paths(engine, strict, [later / "smaller2.png"])
    assert third.results[0].status == "accepted"
    engine.dispose()


def test_manifest_labels_hash_bank_and_priority(tmp_path: Path, settings: Settings) -> None:
    d = tmp_path / "batch"
    d.mkdir()
    bad = _photo(90, (320, 240))
    (d / "bad.jpg").write_bytes(encode(bad, "JPEG"))
    (d / "fine.png").write_bytes(encode(_photo(91), "PNG"))
    (d / "labels.jsonl").write_text(
        json.dumps({"path": "bad.jpg", "labels": ["weapons"], "external_id": "post-1",
                    "text": "buy now"}) + "\n"
        + json.dumps({"path": "fine.png", "labels": "safe"}) + "\n"
    )  # fmt: skip
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [d / "labels.jsonl"], source="partner")
    assert [r.status for r in report.results] == ["accepted", "accepted"]
    bad_id = report.results[0].item_id
    with Session(engine) as s:
        decisions = list(s.scalars(select(Decision).order_by(Decision.id)))
        assert [(x.item_id, x.categories, x.source) for x in decisions] == [
            (bad_id, ["weapons"], "import"),
            (report.results[1].item_id, [], "import"),
        ]
        item = s.get(Item, bad_id)
        assert item is not None and item.status == "decided"
        assert (item.external_id, item.text, item.source) == ("post-1", "buy now", "partner")
        bank = list(s.scalars(select(HashBankEntry)))
        assert [b.item_id for b in bank] == [bad_id]

    # A re-upload of the violating image, slightly altered, is matched and moved up.
    (tmp_path / "reupload.png").write_bytes(encode(bad.resize((300, 225)), "PNG"))
    again = ingest_paths(engine, settings, [tmp_path / "reupload.png", d / "labels.jsonl"])
    hit = next(r for r in again.results if r.path.endswith("reupload.png"))
    assert (hit.status, hit.duplicate_of) == ("near_duplicate", bad_id)
    assert hit.hashbank_match_id == bank[0].id
    with Session(engine) as s:
        item = s.get(Item, hit.item_id)
        assert item is not None and item.hashbank_match_id == bank[0].id
        assert item.priority == settings.limits.hashbank_priority_boost
        # The manifest replay added no decisions.
        assert s.scalar(select(func.count()).select_from(Decision)) == 2
    replayed = [r for r in again.results if "labels.jsonl" in r.path]
    assert [(r.status, r.notes) for r in replayed] == [("duplicate", []), ("duplicate", [])]

    # New ground truth for known bytes supersedes the old import on the existing item.
    (d / "fix.csv").write_text("path,labels\nbad.jpg,weapons|violence_gore\n")
    fixed = ingest_paths(engine, settings, [d / "fix.csv"])
    assert fixed.results[0].status == "duplicate" and fixed.results[0].notes
    with Session(engine) as s:
        last = s.scalars(select(Decision).order_by(Decision.id.desc())).first()
        assert last is not None and last.item_id == bad_id
        assert last.categories == ["violence_gore", "weapons"] and last.supersedes_id is not None
    engine.dispose()


def test_zip_members_are_ingested(tmp_path: Path, settings: Settings) -> None:
    z = tmp_path / "batch.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("dir/one.jpg", encode(_photo(100), "JPEG"))
        zf.writestr("two.webp", encode(_photo(101), "WEBP"))
        zf.writestr("dir/", b"")
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [z])
    assert [(r.path, r.status) for r in report.results] == [
        (f"{z}!dir/one.jpg", "accepted"),
        (f"{z}!two.webp", "accepted"),
    ]
    with Session(engine) as s:
        names = sorted(s.scalars(select(Item.filename)))
    assert names == ["one.jpg", "two.webp"]
    engine.dispose()


def test_database_failure_aborts_and_leaves_no_partial_rows(
    tmp_path: Path, settings: Settings
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for i in range(4):
        (d / f"{i}.png").write_bytes(encode(_photo(110 + i), "PNG"))
    engine = make_engine(settings.database_url)

    def break_db(done: int, total: int) -> None:
        if done == 1:  # between two files' units of work: the audit table disappears
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE audit_events"))

    with pytest.raises(IngestAborted, match="database error") as info:
        ingest_paths(engine, settings, [d], progress=break_db, workers=1)
    done = info.value.report.results
    assert [r.status for r in done] == ["accepted"]
    assert _count(engine, Item) == 1  # the failing file's item rolled back with its audit row
    assert BlobStore(settings.blobs_path).temp_files() == []
    engine.dispose()


def test_refuses_to_run_without_a_database_or_input(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "d", WARDEN_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}"
    )
    (tmp_path / "x.png").write_bytes(encode(_photo(120), "PNG"))
    engine = make_engine(settings.database_url)
    with pytest.raises(WardenError, match="not initialised"):
        ingest_paths(engine, settings, [tmp_path / "x.png"])
    with pytest.raises(WardenError, match="no such file"):
        ingest_paths(engine, settings, [tmp_path / "missing.png"])
    engine.dispose()


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    monkeypatch.setenv("WARDEN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("WARDEN_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    app = typer.Typer()
    ingest_cli.register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps `ingest` a named subcommand
        pass

    yield app
    get_settings.cache_clear()


def test_cli_json_lines_and_exit_codes(tmp_path: Path, cli_env: typer.Typer) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.png").write_bytes(encode(_photo(130), "PNG"))
    (d / "[bold]evil\x1b[2J.jpg").write_bytes(b"<html>")
    runner = CliRunner()
    res = runner.invoke(cli_env, ["ingest", str(d), "--source", "cli-test", "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert lines[-1]["summary"]["files"] == 2 and lines[-1]["summary"]["accepted"] == 1
    statuses = {Path(x["path"]).name: x["status"] for x in lines[:-1]}
    assert statuses == {"a.png": "accepted", "[bold]evil[2J.jpg": "rejected"}
    assert "\x1b" not in res.stdout

    human = runner.invoke(cli_env, ["ingest", str(d)])
    assert human.exit_code == 0
    assert "duplicate" in human.stdout and "[bold]evil[2J.jpg" in human.stdout

    missing = runner.invoke(cli_env, ["ingest", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such file" in missing.output
