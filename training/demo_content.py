"""Seed a fresh Warden with demo users, SynthMod content and scores from the demo model.

`make demo` runs `warden demo`, which calls `prepare_demo` and then serves the workbench.
Everything is idempotent: a second run reuses the users, items and predictions it finds.

Run: warden demo [--items 60] [--no-serve]
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from storage.db import make_engine, unit_of_work
from storage.errors import WardenError
from storage.migrate import upgrade
from storage.models import Item
from storage.settings import Settings

log = logging.getLogger(__name__)

DEMO_USERS = (("admin", "admin"), ("moderator", "moderator"), ("engineer", "engineer"))
DEMO_SOURCE = "demo"


@dataclass
class DemoReport:
    credentials: dict[str, str] = field(default_factory=dict)
    credentials_file: Path | None = None
    ingested: int = 0
    scored: int = 0
    model: str | None = None
    notes: list[str] = field(default_factory=list)


def ensure_demo_users(settings: Settings) -> tuple[dict[str, str], Path]:
    """Create the demo users once, with random passwords kept in a 0600 file in data_dir."""
    from storage.users import create_user, list_users

    cred_file = settings.data_dir / "demo-credentials.txt"
    known: dict[str, str] = {}
    if cred_file.exists():
        for line in cred_file.read_text().splitlines():
            name, _, password = line.partition(" ")
            if name and password:
                known[name] = password
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            existing = {u.username for u in list_users(s)}
            for username, role in DEMO_USERS:
                if username in existing:
                    continue
                password = secrets.token_urlsafe(12)
                create_user(s, username, password, role, actor="demo")
                known[username] = password
    finally:
        engine.dispose()
    cred_file.parent.mkdir(parents=True, exist_ok=True)
    cred_file.touch(mode=0o600, exist_ok=True)
    cred_file.write_text("".join(f"{n} {p}\n" for n, p in known.items()))
    return known, cred_file


def _item_count(settings: Settings) -> int:
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            return int(s.scalar(select(func.count(Item.id))) or 0)
    finally:
        engine.dispose()


def seed_content(settings: Settings, n: int, seed: int = 0) -> int:
    """Render `n` SynthMod images (no labels: the demo queue is for moderators to decide)."""
    from storage.ingest import ingest_paths
    from training.synth import generate

    out = settings.data_dir / "demo-content"
    if not (out / "manifest.jsonl").exists():
        generate(out, n=n, seed=seed, progress=True, overwrite=True)
    engine = make_engine(settings.database_url, settings.db)
    try:
        # The folder, not the manifest: ground truth stays out of the moderators' queue.
        report = ingest_paths(engine, settings, [out / "images"], source=DEMO_SOURCE, actor="demo")
    finally:
        engine.dispose()
    return sum(1 for r in report.results if r.status in ("accepted", "near_duplicate"))


def score_queue(settings: Settings) -> tuple[int, str]:
    """Score every queued item with the configured (default: demo) model."""
    from model.loading import load_backend
    from model.worker import run_worker

    backend = load_backend(settings.model)
    report = run_worker(settings, backend, limit=None, batch_size=settings.model.batch_size)
    return report.scored, backend.model_version


def prepare_demo(settings: Settings, *, items: int = 60, seed: int = 0) -> DemoReport:
    report = DemoReport()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    report.credentials, report.credentials_file = ensure_demo_users(settings)
    if _item_count(settings) == 0:
        report.ingested = seed_content(settings, items, seed)
    try:
        report.scored, report.model = score_queue(settings)
    except WardenError as exc:
        # The workbench is useful without scores (review still works); say why they are missing.
        report.notes.append(f"items were not scored: {exc}")
    return report
