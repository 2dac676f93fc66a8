"""Fixtures for the workbench tests: the real app as a subprocess, seeded users and items.

`live_app` starts `.venv/bin/warden serve --port <free>` once per session on a fresh SQLite
database and data dir; tests seed their own users and items into the same database (the
server reads it live). `browser` is Debian Chromium driven by Playwright (never
`playwright install`). Screenshots go to test-artifacts/screenshots/ at the repo root.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import Engine, update

from storage.db import make_engine, unit_of_work
from storage.domain import ItemStatus, Verdict
from storage.migrate import upgrade
from storage.models import Item
from storage.policy import Policy, load_policy
from storage.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_png(
    path: Path, seed: int, *, colour: tuple[int, int, int] | None = None, size: int = 160
) -> Path:
    """A unique, detailed test image (random blocks: high pixel variance, distinct pHash)."""
    rng = random.Random(seed)
    img = Image.new("RGB", (size, size), colour or (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = rng.randrange(size), rng.randrange(size)
        w, h = rng.randrange(4, 40), rng.randrange(4, 40)
        fill = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle([x, y, x + w, y + h], fill=fill)
    draw.text((8, 8), f"item {seed}", fill=(0, 0, 0))
    img.save(path, format="PNG")
    return path


@dataclass
class LiveApp:
    base_url: str
    settings: Settings
    engine: Engine
    policy: Policy
    workdir: Path
    proc: subprocess.Popen
    _seed: int = field(default=1000)

    def add_user(self, username: str, role: str, password: str = PASSWORD) -> tuple[str, str]:
        from storage.users import create_user

        with unit_of_work(self.engine) as s:
            create_user(s, username, password, role, actor="test")
        return username, password

    def seed_items(
        self,
        n: int,
        *,
        source: str,
        priority: int = 100,
        verdicts: list[Verdict | None] | None = None,
        texts: list[str | None] | None = None,
    ) -> list[int]:
        """Ingest `n` new images; they outrank every other open item (priority), so the next
        reviewer to log in gets them first, in order."""
        from storage.ingest import ingest_paths
        from storage.queue import record_prediction

        folder = self.workdir / f"seed-{self._seed}"
        folder.mkdir(parents=True)
        paths = []
        for i in range(n):
            self._seed += 1
            paths.append(make_png(folder / f"{source}-{i}.png", self._seed))
        report = ingest_paths(self.engine, self.settings, paths, source=source, policy=self.policy)
        ids = [r.item_id for r in report.results if r.status in ("accepted", "near_duplicate")]
        assert len(ids) == n, [r.to_dict() for r in report.results]
        with unit_of_work(self.engine) as s:
            # Every item a reviewer could still be handed drops below the new ones: queued and
            # scored, and in review too, since an earlier test's claim lapses and its item
            # returns to the queue with the priority it had.
            s.execute(
                update(Item).where(Item.status != ItemStatus.decided.value).values(priority=0)
            )
            for rank, item_id in enumerate(ids):
                # Higher priority is claimed first: keep the seeded order.
                values: dict = {"priority": priority + n - rank}
                if texts is not None and texts[rank] is not None:
                    values["text"] = texts[rank]
                s.execute(update(Item).where(Item.id == item_id).values(**values))
            for item_id, verdict in zip(ids, verdicts or [], strict=False):
                if verdict is not None:
                    record_prediction(s, item_id, verdict)
        return ids

    def verdict(
        self,
        scores: dict[str, float] | None = None,
        *,
        ocr_text: str | None = None,
        rationale: str | None = None,
        nsfw: float | None = 0.01,
        signals: dict | None = None,
    ) -> Verdict:
        scores = {c: 0.02 for c in self.policy.ids} | (scores or {})
        return Verdict(
            scores=scores,
            flagged=self.policy.flagged(scores),
            model_version="test-model@1",
            policy_version=self.policy.version,
            latency_ms=1.0,
            rationale=rationale,
            ocr_text=ocr_text,
            signals=({"nsfw": nsfw} if nsfw is not None else {}) | (signals or {}),
        )

    def login_cookie(self, username: str, password: str = PASSWORD) -> str:
        r = httpx.post(
            f"{self.base_url}/login",
            data={"username": username, "password": password},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"].startswith("/ui"), r.text
        return r.cookies["warden_session"]


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"warden serve exited:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"warden serve did not start:\n{log.read_text()[-4000:]}")


def start_app(workdir: Path, extra_env: dict[str, str] | None = None) -> LiveApp:
    data_dir = workdir / "data"
    url = f"sqlite:///{workdir / 'warden.db'}"
    upgrade(url)
    settings = Settings(data_dir=data_dir, WARDEN_DATABASE_URL=url)
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "WARDEN_DATA_DIR": str(data_dir),
            "WARDEN_DATABASE_URL": url,
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": "1",
            "ORT_DISABLE_TELEMETRY": "1",
            "WARDEN_UI__LOGIN_MAX_FAILURES": "3",
            "WARDEN_UI__LOGIN_LOCKOUT_S": "60",
        }
    )
    env.update(extra_env or {})
    warden = Path(sys.executable).parent / "warden"
    log = workdir / "server.log"
    proc = subprocess.Popen(
        [str(warden), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, log)
    except Exception:
        proc.kill()
        raise
    return LiveApp(
        base_url=base,
        settings=settings,
        engine=make_engine(url),
        policy=load_policy(settings.policy_path),
        workdir=workdir,
        proc=proc,
    )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight InternVL built offline (the Upload tab scores with it)."""
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny-vlm") / "internvl", "internvl")


@pytest.fixture(scope="session")
def live_app(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[LiveApp]:
    model_env = {
        "WARDEN_MODEL__NAME": str(tiny_model_dir),
        "WARDEN_MODEL__DEVICE": "cpu",
        "WARDEN_MODEL__OCR": "false",
        "WARDEN_MODEL__NSFW": "true",
    }
    app = start_app(tmp_path_factory.mktemp("live-app"), model_env)
    yield app
    app.proc.terminate()
    try:
        app.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.proc.kill()
    app.engine.dispose()


@pytest.fixture
def wpage(chromium) -> Iterator[object]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
