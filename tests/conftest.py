"""Shared fixtures: a migrated database on SQLite and on the real PostgreSQL at 127.0.0.1.

`db_url` is parametrised over both backends; each PostgreSQL test gets its own database,
dropped afterwards. Set WARDEN_TEST_PG_URL to point elsewhere, or WARDEN_TEST_NO_PG=1 to run
SQLite only (CI always runs both).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from storage.db import make_engine
from storage.migrate import upgrade
from storage.scratch_db import DEFAULT_ADMIN_URL, create_scratch_database, drop_scratch_database
from storage.settings import Settings

PG_ADMIN_URL = os.environ.get("WARDEN_TEST_PG_URL", DEFAULT_ADMIN_URL)

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# Debian Chromium, driven by Playwright: one browser for the whole session, shared by the
# workbench's tests (tests/app) and Label Studio's (tests/labelstudio). Playwright's sync API
# runs one event loop per thread, so a second `sync_playwright()` opened while this one lives
# fails ("Sync API inside the asyncio loop"); every browser test must use this fixture.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        # `make test` installs it; in CI a missing browser is a broken set-up, not a skip.
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is not installed (make test installs it)")
        pytest.skip("Debian chromium is not installed (run `make test`, which installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _backends() -> list[str]:
    if os.environ.get("WARDEN_TEST_NO_PG") == "1":
        return ["sqlite"]
    return ["sqlite", "postgres"]


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a freshly migrated database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warden.db'}"
        upgrade(url)
        yield url
        return
    url = create_scratch_database(PG_ADMIN_URL, prefix="warden_t")
    try:
        upgrade(url)
        yield url
    finally:
        drop_scratch_database(PG_ADMIN_URL, url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Settings pointing at a temporary data dir and the parametrised database."""
    return Settings(data_dir=tmp_path / "data", WARDEN_DATABASE_URL=db_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings on a migrated SQLite database only, for tests that need no backend matrix."""
    url = f"sqlite:///{tmp_path / 'warden.db'}"
    upgrade(url)
    return Settings(data_dir=tmp_path / "data", WARDEN_DATABASE_URL=url)
