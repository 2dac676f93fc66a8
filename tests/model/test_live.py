"""The live model is a database fact: every process follows the registry, none serves another
model when the registry cannot be read. Real subprocesses (a `warden score --follow` worker,
a serving process on the upload tab's scoring function, `warden models promote` / `rollback`),
tiny real InternVLs, SQLite and PostgreSQL.

Run: .venv/bin/pytest tests/model/test_live.py -q -s   (-s prints the time-to-switch)
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from model import live, loading
from model.live import LiveModelUnavailable, RegistryTarget
from model.loading import live_backend, load_target, swap_live
from storage.db import make_engine, unit_of_work
from storage.migrate import upgrade
from storage.models import AuditEvent, Prediction
from storage.policy import load_policy
from storage.settings import DEFAULT_POLICY, ModelSettings, Settings
from tests.model._worker_support import ingest, scoring_settings
from tests.model.test_worker import WARDEN, worker_env
from training import registry
from training.evaluate import EvalRow, compute_report

ROOT = Path(__file__).resolve().parents[2]
SWITCH_LIMIT_S = 30.0


@pytest.fixture(autouse=True)
def _fresh_live_state() -> Iterator[None]:
    """Each test starts as a new process would: nothing live, no registry engine."""
    loading.evict()
    live.dispose_engines()
    yield
    loading.evict()
    live.dispose_engines()


def _model(path: Path) -> ModelSettings:
    return ModelSettings(name=str(path), device="cpu", dtype="float32", quant="none")


def _evaluation(better: bool) -> dict:
    """An evaluation summary (as `warden eval` stores it) on one fixed set of 40 rows: the
    better model finds the 10 new scam rows the other misses; both get the retention and
    harmless rows right. The gate passes v2 over v1 on it without forcing."""
    policy = load_policy(DEFAULT_POLICY)
    rows, scores = [], []
    for i in range(40):
        kind = ("new", "retained", "harmless", "harmless-retained")[i // 10]
        labels = () if kind.startswith("harmless") else ("scam_fraud",)
        hit = better or kind != "new"
        rows.append(EvalRow(Path(f"/set/{kind}{i}.png"), labels, retention="ret" in kind))
        scores.append({c: 0.95 if c in labels and hit else 0.02 for c in policy.ids})
    return compute_report("m", rows, scores, policy, eval_key="evalA").summary()


def _register(settings: Settings, v1: Path, v2: Path) -> None:
    """v1 live, v2 a candidate that passes the gate against it."""
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            registry.register_model(s, "v1", str(v1), actor="test", live=True)
            registry.register_model(s, "v2", str(v2), actor="test")
            registry.record_eval(s, "v1", "evalA", _evaluation(better=False))
            registry.record_eval(s, "v2", "evalA", _evaluation(better=True))
    finally:
        engine.dispose()


def _versions(settings: Settings, item_ids: list[int]) -> dict[int, list[str]]:
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            rows = s.execute(
                select(Prediction.item_id, Prediction.model_version)
                .where(Prediction.item_id.in_(item_ids))
                .order_by(Prediction.id)
            ).all()
    finally:
        engine.dispose()
    out: dict[int, list[str]] = {}
    for item_id, version in rows:
        out.setdefault(item_id, []).append(version)
    return out


def _warden(settings: Settings, *args: str) -> None:
    """Run a `warden` command in its own process; the change is committed when it returns."""
    proc = subprocess.run(
        [WARDEN, *args], env=worker_env(settings), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- in one process ---------------------------------------------------------------------------


def test_empty_registry_serves_the_configured_model_then_follows_the_registry(
    settings: Settings, tiny_model_dir, caplog: pytest.LogCaptureFixture
) -> None:
    v1, v2 = tiny_model_dir("internvl", 0), tiny_model_dir("internvl", 1)
    configured = _model(v1)
    url = settings.database_url
    with caplog.at_level(logging.WARNING, logger="model.loading"):
        served = live_backend(configured, database_url=url, check_s=0)
    assert served.model_version.startswith(f"{v1.name}@")  # not a registry name
    assert "no live model in the registry; serving the configured model" in caplog.text

    _register(settings, v1, v2)
    # Registered meanwhile, and the check is due (check_s=0): the registry's version now.
    assert live_backend(configured, database_url=url, check_s=0).model_version == "v1"
    # A long interval: no query, the same backend.
    assert live_backend(configured, database_url=url, check_s=3600).model_version == "v1"
    engine = make_engine(url, settings.db)
    try:
        with unit_of_work(engine) as s:
            result = registry.promote(s, "v2", "test")
            assert result.promoted, result.summary()
    finally:
        engine.dispose()
    # A promotion committed in this process makes its own check due at once.
    assert live_backend(configured, database_url=url, check_s=3600).model_version == "v2"


@pytest.mark.parametrize("broken", ["sqlite-file-removed", "postgres-unreachable"])
def test_live_backend_raises_when_the_registry_cannot_be_read(
    broken: str, tiny_internvl: Path, tmp_path: Path
) -> None:
    if broken == "sqlite-file-removed":
        db = tmp_path / "gone" / "warden.db"
        url = f"sqlite:///{db}"
        upgrade(url)
        for f in db.parent.iterdir():
            f.unlink()
    else:
        url = "postgresql+psycopg://warden@127.0.0.1:1/warden"  # nothing listens on port 1
    t0 = time.monotonic()
    with pytest.raises(LiveModelUnavailable, match="cannot read the model registry"):
        live_backend(_model(tiny_internvl), database_url=url)
    assert time.monotonic() - t0 >= 3.0  # retried with backoff before giving up
    # Nothing was loaded in its place: not the configured model, not the demo.
    assert loading._live is None and not loading._cache


def test_a_registry_version_served_remotely_records_its_registry_name() -> None:
    """An entry whose URI is "openai" (a vLLM server) names its registry version in every
    prediction, like a local one, and is loaded once (the live check compares backends)."""
    entry = RegistryTarget("r-remote", "openai", None, {})
    base = ModelSettings(openai_base_url="http://127.0.0.1:9/v1", openai_model="served")
    backend = load_target(entry, base=base)
    assert backend.model_version == "r-remote"
    assert load_target(entry, base=base) is backend
    assert swap_live(entry, base=base) is backend


def _drop_registry_table(settings: Settings) -> None:
    """A database error on every registry read from now on (the rest of the schema works)."""
    engine = make_engine(settings.database_url, settings.db)
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE model_versions RENAME TO model_versions_gone"))
    finally:
        engine.dispose()


def test_a_serving_process_stops_when_the_registry_becomes_unreadable(
    settings: Settings, tiny_model_dir
) -> None:
    v1, v2 = tiny_model_dir("internvl", 0), tiny_model_dir("internvl", 1)
    _register(settings, v1, v2)
    url = settings.database_url
    assert live_backend(_model(v1), database_url=url, check_s=0).model_version == "v1"
    _drop_registry_table(settings)
    # Which model is live is unknown now: an error, not v1 kept on and not the configured one.
    with pytest.raises(LiveModelUnavailable, match="cannot read the model registry"):
        live_backend(_model(v1), database_url=url, check_s=0)


# --- across processes -------------------------------------------------------------------------


def _wait_for(
    settings: Settings,
    want: str,
    next_items: Callable[[], list[int]],
    *,
    limit_s: float = SWITCH_LIMIT_S,
) -> float:
    """Keep ingesting new items (via `next_items`) until one is scored by `want`; returns the
    seconds that took."""
    t0 = time.monotonic()
    ingested: list[int] = []
    while True:
        ingested += next_items()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            got = _versions(settings, ingested)
            if any(want in v for v in got.values()):
                return time.monotonic() - t0
            time.sleep(0.2)
        assert time.monotonic() - t0 < limit_s, f"{want} not served after {limit_s} s: {got}"


def _switch_s(settings: Settings, action: str, want: str) -> float:
    """Seconds from the registry change's commit (its audit event) to the first prediction by
    `want` after it: the time-to-switch, from the database's own timestamps (the event is
    written in the promoting transaction, a few ms before its commit)."""
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            changed = s.scalar(select(func.max(AuditEvent.at)).where(AuditEvent.action == action))
            first = s.scalar(
                select(func.min(Prediction.created_at)).where(
                    Prediction.model_version == want, Prediction.created_at > changed
                )
            )
    finally:
        engine.dispose()
    return (first - changed).total_seconds()


def _wait_scored(settings: Settings, item_ids: list[int]) -> dict[int, list[str]]:
    deadline = time.monotonic() + SWITCH_LIMIT_S
    while (got := _versions(settings, item_ids)).keys() != set(item_ids):
        assert time.monotonic() < deadline, f"unscored: {set(item_ids) - got.keys()}"
        time.sleep(0.2)
    return got


@pytest.mark.slow
def test_worker_follows_promotion_and_rollback_made_by_another_process(
    settings: Settings, tiny_model_dir, tmp_path: Path
) -> None:
    v1, v2 = tiny_model_dir("internvl", 0), tiny_model_dir("internvl", 1)
    settings = scoring_settings(settings, v1)
    _register(settings, v1, v2)
    counter = iter(range(10_000))
    every: list[int] = []

    def next_items() -> list[int]:
        ids = ingest(settings, tmp_path / "in", 1, first=next(counter))
        every.extend(ids)
        return ids

    worker = subprocess.Popen(
        [WARDEN, "score", "--follow", "--poll-s", "0.3", "--live-check-s", "1"]
        + ["--no-backfill", "--no-progress", "--batch-size", "2", "--worker-id", "follower"],
        env=worker_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(settings, "v1", next_items, limit_s=180)  # start-up: imports, loading v1
        _warden(settings, "models", "promote", "v2")
        _wait_for(settings, "v2", next_items)
        assert worker.poll() is None  # the same worker, no restart
        _warden(settings, "models", "rollback")
        _wait_for(settings, "v1", next_items)
        after = next_items() + next_items()
        versions = _wait_scored(settings, every)
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)  # --follow ends cleanly on SIGTERM
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    to_v2 = _switch_s(settings, "model.promote", "v2")
    back_to_v1 = _switch_s(settings, "model.rollback", "v1")
    backend = settings.database_url.split(":")[0]
    print(f"\ntime to switch ({backend}): promote {to_v2:.1f} s, rollback {back_to_v1:.1f} s")
    assert worker.returncode == 0, out[-3000:]
    assert 0 < to_v2 < SWITCH_LIMIT_S and 0 < back_to_v1 < SWITCH_LIMIT_S
    # After the rollback was seen, every new item is scored by v1; every item exactly once.
    assert {i: versions[i] for i in after} == {i: ["v1"] for i in after}, out[-3000:]
    assert all(len(v) == 1 for v in versions.values()), versions
    assert "model v1 -> v2 -> v1, policy" in out, out[-3000:]


@pytest.mark.slow
def test_serving_process_scores_uploads_with_a_model_promoted_elsewhere(
    settings: Settings, tiny_model_dir, tmp_path: Path
) -> None:
    v1, v2 = tiny_model_dir("internvl", 0), tiny_model_dir("internvl", 1)
    settings = scoring_settings(settings, v1)
    _register(settings, v1, v2)
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.model.live_scoring_process"],
        cwd=ROOT,
        env=worker_env(settings),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    counter = iter(range(10_000))

    def upload_and_score() -> tuple[list[int], dict]:
        ids = ingest(settings, tmp_path / "up", 1, first=next(counter))
        server.stdin.write(" ".join(map(str, ids)) + "\n")  # type: ignore[union-attr]
        server.stdin.flush()  # type: ignore[union-attr]
        line = server.stdout.readline()  # type: ignore[union-attr]
        assert line, server.stderr.read()[-3000:]  # type: ignore[union-attr]
        reply = json.loads(line)
        assert "error" not in reply, reply
        return ids, reply

    try:
        assert json.loads(server.stdout.readline()) == {"ready": True}  # type: ignore[union-attr]
        ids, reply = upload_and_score()
        assert reply == {"model_version": "v1", "scored": 1}
        t0 = time.monotonic()  # before the promotion: an upper bound on the switch time
        _warden(settings, "models", "promote", "v2")
        while True:
            ids, reply = upload_and_score()
            if reply["model_version"] == "v2":
                break
            assert time.monotonic() - t0 < SWITCH_LIMIT_S, "the server kept scoring with v1"
        switched = _switch_s(settings, "model.promote", "v2")
        assert 0 < switched < SWITCH_LIMIT_S
        assert _versions(settings, ids) == {ids[0]: ["v2"]}
        assert server.poll() is None  # the same process, no restart
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    backend = settings.database_url.split(":")[0]
    print(f"\nserving process ({backend}): promotion served after {switched:.1f} s")


@pytest.mark.slow
def test_worker_exits_with_an_error_when_the_registry_becomes_unreadable(
    settings: Settings, tiny_model_dir, tmp_path: Path
) -> None:
    v1, v2 = tiny_model_dir("internvl", 0), tiny_model_dir("internvl", 1)
    # The configured model is another one: a fallback to it would show in the predictions.
    settings = scoring_settings(settings, tiny_model_dir("internvl", 2))
    _register(settings, v1, v2)
    first = ingest(settings, tmp_path / "in", 1)
    worker = subprocess.Popen(
        [WARDEN, "score", "--follow", "--poll-s", "0.3", "--live-check-s", "0.5"]
        + ["--no-backfill", "--no-progress"],
        env=worker_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_scored(settings, first) == {first[0]: ["v1"]}
        _drop_registry_table(settings)
        late = ingest(settings, tmp_path / "in", 2, first=1)
        out, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 2, out + err
    assert "Error: cannot read the model registry" in err and "Traceback" not in err, err
    # Items claimed before the failed check were scored by the live model of the last check;
    # none by anything else, and the worker stopped claiming.
    scored = _versions(settings, first + late)
    assert all(v == ["v1"] for v in scored.values()), scored
