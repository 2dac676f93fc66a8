"""The cheap benches end to end, as commands: `--results` is honoured, the file carries its
provenance, and nothing is written anywhere else (not the checkout's bench/results/, not the
working directory; scratch goes to TMPDIR and is removed)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench import provenance, readme_table
from tests.conftest import PG_ADMIN_URL, _backends

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT_RESULTS = ROOT / "bench" / "results"


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _has_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


NO_GPU = pytest.mark.skipif(_has_gpu(), reason="this machine has a GPU: the GPU mode would run")


def run_bench(
    name: str, args: list[str], tmp_path: Path, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    cwd, scratch = tmp_path / "cwd", tmp_path / "scratch"
    cwd.mkdir(exist_ok=True)
    if not scratch.exists():
        scratch.mkdir()
    env = dict(
        os.environ,
        TMPDIR=str(scratch.resolve()),
        WARDEN_BENCH_PG_URL=PG_ADMIN_URL,
        WARDEN_TEST_PG_URL=PG_ADMIN_URL,
        ORT_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="1",
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_wrote_only(tmp_path: Path, out: Path, before: dict[str, str]) -> dict:
    assert _snapshot(CHECKOUT_RESULTS) == before, "the bench wrote into bench/results/"
    assert list((tmp_path / "cwd").iterdir()) == []
    assert list((tmp_path / "scratch").resolve().iterdir()) == []
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    return json.loads(out.read_text())


@pytest.mark.parametrize("backend", _backends())
def test_queue_latency_writes_only_its_results_file(tmp_path: Path, backend: str) -> None:
    before = _snapshot(CHECKOUT_RESULTS)
    out_dir = tmp_path / "run1"
    args = ["--items", "200", "--rounds", "20", "--backends", backend, "--results", f"{out_dir}/"]
    run = run_bench("queue_latency", args, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    data = _assert_wrote_only(tmp_path, out_dir / "queue.json", before)

    # The keys existing readers use are still there; provenance is added.
    trip = data["backends"][backend]["round_trip_ms"]
    assert 0 < trip["p50"] <= trip["p95"] <= trip["p99"]
    assert data["backends"][backend]["items"] == 200
    prov = data["provenance"]
    assert prov["command"].startswith("python bench/queue_latency.py --items 200")
    assert len(prov["git"]["commit"]) == 40 and prov["wall_s"] > 0
    assert data["hardware"] == provenance.hardware_summary(prov["hardware"])

    # ... and the README table can be regenerated from that run.
    table, problems = readme_table.render_table(out_dir)
    row = next(line for line in table.splitlines() if "/queue.json`" in line)
    assert "200 items stored" in row and f"`{prov['git']['commit'][:7]}" in row
    assert not any("queue.json" in p for p in problems)


@pytest.mark.parametrize("backend", _backends())
def test_ingest_writes_only_its_results_file(tmp_path: Path, backend: str) -> None:
    before = _snapshot(CHECKOUT_RESULTS)
    out = tmp_path / "elsewhere" / "ingest-run.json"
    args = ["--n", "3", "--results", str(out)] + (["--no-pg"] if backend == "sqlite" else [])
    run = run_bench("ingest", args, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    data = _assert_wrote_only(tmp_path, out, before)
    by = {r["backend"]: r for r in data["runs"]}
    assert by["sqlite"]["accepted"] == 3 and by["sqlite"]["reingest_duplicates"] == 3
    assert ("postgresql" in by) == (backend == "postgres")
    assert data["provenance"]["command"].endswith(
        f"--results {out}" + (" --no-pg" if backend == "sqlite" else "")
    )


@pytest.mark.browser
@pytest.mark.parametrize("backend", _backends())
def test_review_latency_writes_only_its_results_file(tmp_path: Path, backend: str) -> None:
    """Seed, `warden serve`, Chromium: the server's data, log and Gradio's cache and the
    browser's profile all stay in the scratch folder, which is removed."""
    before = _snapshot(CHECKOUT_RESULTS)
    # Chromium's singleton socket lives in TMPDIR and a Unix socket path must stay short.
    short = Path(tempfile.mkdtemp(prefix="wb-", dir="/tmp"))
    (tmp_path / "scratch").symlink_to(short)
    try:
        _review_latency_run(tmp_path, backend, before)
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _review_latency_run(tmp_path: Path, backend: str, before: dict[str, str]) -> None:
    out_dir = tmp_path / "run"
    pg = ["--postgres", PG_ADMIN_URL] if backend == "postgres" else []
    args = ["--items", "20", "--submits", "2", *pg, "--results", f"{out_dir}/"]
    run = run_bench("review_latency", args, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    name = "review_latency_postgres.json" if pg else "review_latency.json"
    data = _assert_wrote_only(tmp_path, out_dir / name, before)
    assert data["database"] == ("PostgreSQL" if pg else "SQLite (WAL)")
    assert {k: v["n"] for k, v in data["results"].items()} == {"think_500ms": 2, "think_0ms": 2}
    assert data["provenance"]["command"].startswith("python bench/review_latency.py")


@pytest.mark.labelstudio
def test_labelstudio_writes_only_its_results_file(tmp_path: Path) -> None:
    """A real Label Studio server: push, webhook, decision; its data dir stays in scratch.
    (The bench's own UI secret was 27 bytes, under Warden's 32-byte minimum, so every push
    failed before this ran.)"""
    before = _snapshot(CHECKOUT_RESULTS)
    out = tmp_path / "ls" / "labelstudio.json"
    args = ["--items", "3", "--annotations", "2", "--results", str(out)]
    run = run_bench("labelstudio", args, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    data = _assert_wrote_only(tmp_path, out, before)
    assert data["push_batched"]["items"] == data["push_single"]["items"] == 3
    assert data["webhook_latency"]["annotations"] == 2
    assert 0 < data["webhook_latency"]["p50_ms"] <= data["webhook_latency"]["p95_ms"]
    assert data["provenance"]["command"].startswith("python bench/labelstudio.py --items 3")


@pytest.mark.parametrize(
    ("bench", "args"),
    [
        ("queue_latency", ["--results", "/proc/no-such/q.json"]),
        ("queue_latency", ["--results", "results.txt"]),
        ("queue_latency", ["--items", "60", "--rounds", "20"]),
        ("queue_latency", ["--backends", "mysql"]),
        ("ingest", ["--n", "0"]),
        ("ingest", ["--results", "/proc/no-such/"]),
        ("reader", ["--results", "/proc/no-such/"]),
        ("demo_refine_grid", ["--results", "/proc/no-such/"]),
        ("media", ["--results", "/proc/no-such/"]),
        ("worker", ["--results", "/proc/no-such/"]),
        ("scoring", ["--memory-batch", "1,eight"]),
        ("scoring", ["--memory-batch", "0"]),
        # Without a GPU the GPU modes say so before any work.
        pytest.param("scoring", ["--memory-only", "--memory-device", "cuda"], marks=NO_GPU),
        pytest.param("ocr", ["--rapidocr-cuda"], marks=NO_GPU),
    ],
)
def test_bad_arguments_are_a_clear_error_before_any_work(
    tmp_path: Path, bench: str, args: list[str]
) -> None:
    before = _snapshot(CHECKOUT_RESULTS)
    run = run_bench(bench, args, tmp_path, timeout=120)
    assert run.returncode == 2
    assert "error:" in run.stderr and "Traceback" not in run.stderr
    assert _snapshot(CHECKOUT_RESULTS) == before
    assert list((tmp_path / "cwd").iterdir()) == []


def test_loop_refuses_to_wipe_a_work_folder_it_did_not_make(tmp_path: Path) -> None:
    work = tmp_path / "precious"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    run = run_bench("loop", ["--work", str(work), "--results", str(tmp_path / "l.json")], tmp_path)
    assert run.returncode == 2 and "not wiping it" in run.stderr
    assert (work / "thesis.tex").read_text() == "years of work"
    assert not (tmp_path / "l.json").exists()


@pytest.mark.parametrize(
    "name",
    [
        "queue_latency",
        "ingest",
        "scoring",
        "review_latency",
        "labelstudio",
        "loop",
        "demo_foreign",
        "demo_benign",
        "demo_refine_grid",
    ],
)
def test_every_bench_takes_results(tmp_path: Path, name: str) -> None:
    run = run_bench(name, ["--help"], tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--results" in run.stdout
