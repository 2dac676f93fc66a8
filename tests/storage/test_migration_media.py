"""Migration 0003 (item_media) on SQLite and PostgreSQL: an old database with items upgrades to
one medium per item, reads the same through storage.media, and downgrades cleanly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from storage.db import make_engine, session_factory
from storage.media import media_of
from storage.migrate import alembic_config, current_revision, upgrade
from storage.scratch_db import DEFAULT_ADMIN_URL, create_scratch_database, drop_scratch_database

PG_ADMIN_URL = os.environ.get("WARDEN_TEST_PG_URL", DEFAULT_ADMIN_URL)


def _backends() -> list[str]:
    return ["sqlite"] if os.environ.get("WARDEN_TEST_NO_PG") == "1" else ["sqlite", "postgres"]


@pytest.fixture(params=_backends())
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated to 0002 only (before item media), empty."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0002_sessions")
        yield url
        return
    url = create_scratch_database(PG_ADMIN_URL, prefix="warden_m")
    try:
        upgrade(url, "0002_sessions")
        yield url
    finally:
        drop_scratch_database(PG_ADMIN_URL, url)


def _seed_old_items(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for i, sha in enumerate(("a" * 64, "b" * 64), start=1):
            conn.execute(
                text(
                    "INSERT INTO blobs (sha256, size_bytes, mime, width, height, created_at) "
                    "VALUES (:sha, 10, 'image/png', 4, 4, CURRENT_TIMESTAMP)"
                ),
                {"sha": sha},
            )
            conn.execute(
                text(
                    "INSERT INTO items (id, blob_sha256, view_sha256, source, status, priority, "
                    "phash, animated, meta, created_at, updated_at) VALUES (:id, :sha, :view, "
                    "'cli', 'queued', 0, :phash, false, '{}', CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                ),
                {"id": i, "sha": sha, "view": ("v" * 63 + str(i)), "phash": f"{i:016x}"},
            )
    engine.dispose()


def test_upgrade_backfills_one_medium_per_item_and_downgrade_drops_it(old_db: str) -> None:
    _seed_old_items(old_db)
    assert "item_media" not in inspect(make_engine(old_db)).get_table_names()

    upgrade(old_db)
    assert current_revision(old_db) == "0003_item_media"
    engine = make_engine(old_db)
    with session_factory(engine)() as s:
        media = media_of(s, 2)
        rows = s.execute(text("SELECT COUNT(*) FROM item_media")).scalar_one()
    assert rows == 2
    assert len(media) == 1
    m = media[0]
    assert (m.position, m.kind, m.blob_sha256, m.view_sha256, m.phash) == (
        0, "image", "b" * 64, "v" * 63 + "2", f"{2:016x}",
    )  # fmt: skip
    engine.dispose()

    cfg = alembic_config(old_db)
    command.downgrade(cfg, "0002_sessions")
    assert current_revision(old_db) == "0002_sessions"
    engine = make_engine(old_db)
    assert "item_media" not in inspect(engine).get_table_names()
    with engine.connect() as conn:  # the items themselves are untouched
        assert conn.execute(text("SELECT COUNT(*) FROM items")).scalar_one() == 2
    engine.dispose()

    upgrade(old_db)  # and up again: the backfill runs once more, no duplicates
    engine = make_engine(old_db)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM item_media")).scalar_one() == 2
    engine.dispose()


def test_item_without_media_rows_reads_as_one_image(old_db: str) -> None:
    upgrade(old_db)
    _seed_old_items(old_db)  # inserted after the migration, as bench/ and old code do
    engine = make_engine(old_db)
    with session_factory(engine)() as s:
        media = media_of(s, 1)
        assert media_of(s, 999) == []
    assert [(m.position, m.blob_sha256, m.label) for m in media] == [(0, "a" * 64, "Image 1")]
    engine.dispose()
