"""Secrets never reach output: `warden settings`, masked settings data, and log lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.masking import MaskSecretsFilter, mask_text, mask_url, masked_settings
from storage.settings import Settings

DB_PASSWORD = "pw-Sup3r+secret"
DB_URL = "postgresql://warden:pw-Sup3r%2Bsecret@db.internal:5432/warden"
SECRETS = {
    "WARDEN_DATABASE_URL": DB_URL,
    "WARDEN_LABELSTUDIO__API_KEY": "ls-0123456789abcdef0123456789abcdef0123",
    "WARDEN_LABELSTUDIO__WEBHOOK_SECRET": "hook-secret-value-42",
    "WARDEN_MODEL__OPENAI_API_KEY": "sk-openai-key-do-not-print",
    "WARDEN_UI__SECRET_KEY": "ui-secret-key-0123456789abcdef-0123456789",
    "WARDEN_LABELSTUDIO__URL": "http://admin:ls-admin-pass@ls.internal:8080",
}
# What must never be printed: each value, and the decoded database password.
FORBIDDEN = [v for k, v in SECRETS.items() if "URL" not in k] + [
    DB_PASSWORD,
    "pw-Sup3r%2Bsecret",
    "ls-admin-pass",
]
REPO = Path(__file__).resolve().parents[2]


def test_warden_settings_masks_every_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(SECRETS, WARDEN_DATA_DIR=str(tmp_path))
    warden = Path(sys.executable).parent / "warden"
    r = subprocess.run(
        [str(warden), "settings"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for secret in FORBIDDEN:
        assert secret not in out, secret
    data = json.loads(r.stdout)
    assert data["database_url"] == "postgresql://warden:***@db.internal:5432/warden"
    assert data["labelstudio"]["api_key"] == "***" and data["ui"]["secret_key"] == "***"
    assert data["labelstudio"]["url"] == "http://admin:***@ls.internal:8080"
    # The rest stays readable.
    assert data["ui"]["session_ttl_s"] == 12 * 3600


@pytest.fixture
def secret_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    return Settings(data_dir=tmp_path)


def test_masked_settings_and_free_text(secret_settings: Settings) -> None:
    dumped = json.dumps(masked_settings(secret_settings))
    for secret in FORBIDDEN:
        assert secret not in dumped
    api_key = SECRETS["WARDEN_MODEL__OPENAI_API_KEY"]
    line = f"cannot connect to {secret_settings.database_url} with key {api_key}"
    masked = mask_text(line, secret_settings)
    assert DB_PASSWORD not in masked and "sk-openai" not in masked and "db.internal" in masked
    assert mask_url("sqlite:///warden-data/warden.db") == "sqlite:///warden-data/warden.db"
    assert mask_url("not a url") == "not a url"


def test_log_lines_are_masked(secret_settings: Settings) -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(MaskSecretsFilter(secret_settings))
    log = logging.getLogger("warden.test.masking")
    log.addHandler(handler)
    try:
        log.warning("db %s", secret_settings.database_url)
        try:
            raise RuntimeError(f"bad key {SECRETS['WARDEN_LABELSTUDIO__API_KEY']}")
        except RuntimeError:
            log.exception("push failed for %s", SECRETS["WARDEN_UI__SECRET_KEY"])
    finally:
        log.removeHandler(handler)
    text = "\n".join(records)
    assert "RuntimeError" in text and text.count("***") >= 3
    for secret in FORBIDDEN:
        assert secret not in text, secret
