"""bench/provenance.py: what every results file records about the run, and how it is written."""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pytest

from bench import provenance

ROOT = Path(__file__).resolve().parents[2]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_record_names_commit_command_machine_versions_load_and_time() -> None:
    prov = provenance.start(str(ROOT / "bench" / "queue_latency.py"), ["--items", "5"])
    time.sleep(0.2)
    rec = prov.finish()

    assert rec["git"]["commit"] == _git(ROOT, "rev-parse", "HEAD")
    assert isinstance(rec["git"]["dirty"], bool)
    assert rec["command"] == "python bench/queue_latency.py --items 5"
    started = datetime.fromisoformat(rec["started_at"])
    finished = datetime.fromisoformat(rec["finished_at"])
    assert started.utcoffset().total_seconds() == 0 and started <= finished
    assert rec["wall_s"] >= 0.2
    for key in ("load_average_start", "load_average_end"):
        assert len(rec[key]) == 3 and all(isinstance(v, float) and v >= 0 for v in rec[key])

    hw = rec["hardware"]
    assert hw["logical_cores"] == os.cpu_count()
    assert 1 <= hw["usable_cores"] <= hw["logical_cores"]
    assert hw["cpu"].strip()
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert abs(hw["ram_bytes"] - physical) < 0.05 * physical
    torch = sys.modules.get("torch")
    if shutil.which("nvidia-smi") is None and (torch is None or not torch.cuda.is_available()):
        assert hw["gpu"] == "no GPU"
    assert rec["versions"]["python"] == platform.python_version()
    assert rec["versions"]["torch"] == metadata.version("torch")
    assert rec["versions"]["transformers"] == metadata.version("transformers")
    assert hw["cpu"] in prov.summary and f"{hw['logical_cores']}-core" in prov.summary


def test_finish_is_idempotent() -> None:
    prov = provenance.start(__file__, [])
    first = dict(prov.finish())
    time.sleep(0.05)
    assert prov.finish() == first


def test_start_and_finish_never_import_torch() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from bench import provenance; "
        "provenance.start('x.py', []).finish(); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_dirty_means_tracked_changes_and_names_them(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")

    (repo / "results.json").write_text("{}")  # untracked: a results file is not a change
    clean = provenance.git_state(repo)
    assert clean == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False, "dirty_paths": []}

    # A committed results file rewritten by an earlier bench of a series is not a change to
    # the measured code either; the code beside it is.
    (repo / "bench" / "results").mkdir(parents=True)
    (repo / "bench" / "results" / "loop.json").write_text("{}")
    _git(repo, "add", "bench")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "two")
    (repo / "bench" / "results" / "loop.json").write_text('{"new": 1}')
    assert provenance.git_state(repo)["dirty"] is False

    (repo / "a.py").write_text("x = 2\n")
    assert provenance.git_state(repo)["dirty"] is True
    assert provenance.git_state(repo)["dirty_paths"] == ["a.py"]


def test_git_state_outside_a_repository_is_unknown_not_an_error(tmp_path: Path) -> None:
    env_free = tmp_path / "nogit"
    env_free.mkdir()
    state = provenance.git_state(env_free)
    assert state["commit"] is None


def test_write_results_creates_folders_and_adds_provenance(tmp_path: Path) -> None:
    prov = provenance.start(__file__, [])
    out = tmp_path / "deep" / "er" / "queue.json"
    assert provenance.write_results(out, {"p95_ms": 1.5}, prov) == out
    data = json.loads(out.read_text())
    assert data["p95_ms"] == 1.5
    assert data["provenance"]["git"]["commit"] and "wall_s" in data["provenance"]
    assert prov.finished
    assert stat.S_IMODE(out.stat().st_mode) & 0o044 == 0o044  # readable by others
    assert sorted(p.name for p in out.parent.iterdir()) == ["queue.json"]


def test_write_results_is_atomic_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    prov = provenance.start(__file__, []).finish()
    provenance.write_results(out, {"figure": 1}, prov)
    before = out.read_bytes()
    with pytest.raises(TypeError):
        provenance.write_results(out, {"figure": 2, "bad": object()}, prov)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no half-written temp left


def test_write_results_replaces_whole_file(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    prov = provenance.start(__file__, []).finish()
    provenance.write_results(out, {"long": "x" * 10_000}, prov)
    provenance.write_results(out, {"short": 1}, prov)
    assert "long" not in json.loads(out.read_text())


def test_resolve_results_file_folder_and_default(tmp_path: Path) -> None:
    assert provenance.resolve_results(tmp_path / "a.json", "q.json") == tmp_path / "a.json"
    assert provenance.resolve_results(tmp_path, "q.json") == tmp_path / "q.json"
    new_dir = f"{tmp_path / 'new'}{os.sep}"
    assert provenance.resolve_results(new_dir, "q.json") == tmp_path / "new" / "q.json"
    assert (tmp_path / "new").is_dir()
    assert provenance.resolve_results(None, "q.json") == ROOT / "bench" / "results" / "q.json"
    assert not list(tmp_path.glob(".*probe"))


@pytest.mark.parametrize("bad", ["results.txt", "afile/x.json"])
def test_resolve_results_rejects_unwritable_or_non_json(tmp_path: Path, bad: str) -> None:
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(ValueError, match="results"):
        provenance.resolve_results(tmp_path / bad, "q.json")
