"""Fixtures: one real Label Studio server per test session, a fresh project per test, items.

The server runs from its own venv (installed on first use by `ensure_installed`) on a free
127.0.0.1 port, over a copy of a migrated data-dir template, so it starts in seconds.
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from storage.blobs import BlobStore
from storage.db import unit_of_work
from storage.models import Blob, Item, OutboxMessage, Prediction, utcnow
from storage.policy import Policy, load_policy
from storage.settings import DEFAULT_POLICY, Settings, get_settings
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.server import LabelStudioServer, free_port, fresh_data_dir

WEBHOOK_SECRET = "test-webhook-secret-0123456789"


def make_outbox_due(engine: Engine) -> None:
    """Skip the outbox's backoff wait: these tests are about outcomes, not about the clock."""
    with unit_of_work(engine) as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def choices_result(*labels: str) -> list[dict]:
    """An annotation's result as Label Studio's labeling UI sends it: the category choices."""
    return [
        {
            "from_name": "categories",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": list(labels)},
        }
    ]


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    data_dir = fresh_data_dir(tmp_path_factory.mktemp("ls") / "data")
    server = LabelStudioServer(data_dir=data_dir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ls_client(ls_server: LabelStudioServer) -> Iterator[LabelStudioClient]:
    if not ls_server.running:  # a fault test stopped it and failed before restarting
        ls_server.start()
    client = LabelStudioClient(ls_server.url, ls_server.api_key)
    yield client
    client.close()


@pytest.fixture
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY)


def ls_settings_for(base: Settings, server: LabelStudioServer, **ls: object) -> Settings:
    return base.model_copy(
        update={
            "labelstudio": base.labelstudio.model_copy(
                update={
                    "url": server.url,
                    "api_key": SecretStr(server.api_key),
                    "webhook_secret": SecretStr(WEBHOOK_SECRET),
                    **ls,
                }
            )
        }
    )


@pytest.fixture
def ls_settings(settings: Settings, ls_server: LabelStudioServer) -> Settings:
    """Settings on the parametrised database, pointing at the session's server."""
    return ls_settings_for(settings, ls_server)


def png_bytes(seed: int, size: int = 32) -> bytes:
    rng = random.Random(seed)
    im = Image.new(
        "RGB", (size, size), (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    )
    for _ in range(8):
        x, y = rng.randrange(size), rng.randrange(size)
        im.putpixel((x, y), (rng.randrange(256), 0, 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


MakeItems = Callable[..., list[int]]


@pytest.fixture
def make_items(settings: Settings, engine: Engine, policy: Policy) -> MakeItems:
    """Create scored items: each entry is a dict of category scores (others 0.01)."""
    store = BlobStore(settings.blobs_path)
    counter = iter(range(10**6))

    def make(score_list: list[dict[str, float]], *, model_version: str = "demo-v1") -> list[int]:
        ids: list[int] = []
        with unit_of_work(engine) as s:
            for scores in score_list:
                n = next(counter)
                data = png_bytes(n + int(time.time_ns() % 10**6))
                sha = store.put_bytes(data)
                if s.get(Blob, sha) is None:
                    s.add(
                        Blob(
                            sha256=sha, size_bytes=len(data), mime="image/png", width=32, height=32
                        )
                    )
                full = {c: 0.01 for c in policy.ids} | scores
                item = Item(
                    blob_sha256=sha,
                    view_sha256=sha,
                    source="test",
                    status="scored",
                    phash=f"{random.Random(n).getrandbits(64):016x}",
                )
                s.add(item)
                s.flush()
                s.add(
                    Prediction(
                        item_id=item.id,
                        model_version=model_version,
                        policy_version=policy.version,
                        scores=full,
                        flagged=policy.flagged(full),
                    )
                )
                ids.append(item.id)
        return ids

    return make


class WebhookServer:
    """The receiver under uvicorn in a thread on a free port, as the app would mount it."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        import uvicorn
        from fastapi import FastAPI

        from training.labelstudio.webhook import make_webhook_router

        app = FastAPI()
        app.include_router(make_webhook_router(settings, engine), prefix="/hooks/labelstudio")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/labelstudio"
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("webhook server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


@pytest.fixture
def webhook_server(ls_settings: Settings, engine: Engine) -> Iterator[WebhookServer]:
    with WebhookServer(ls_settings, engine) as srv:
        yield srv


def wait_for(pred: Callable[[], object], timeout_s: float = 15.0) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.fixture
def cli_env(ls_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The CLI sees the test's database, data dir and (correct) Label Studio key."""
    monkeypatch.setenv("WARDEN_DATABASE_URL", ls_settings.database_url)
    monkeypatch.setenv("WARDEN_DATA_DIR", str(ls_settings.data_dir))
    monkeypatch.setenv("WARDEN_LABELSTUDIO__URL", ls_settings.labelstudio.url)
    key = ls_settings.labelstudio.api_key
    assert key is not None
    monkeypatch.setenv("WARDEN_LABELSTUDIO__API_KEY", key.get_secret_value())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
