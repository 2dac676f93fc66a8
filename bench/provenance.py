"""Provenance for benchmark results: which code, which machine, how loaded, when, how long.

Every bench calls `start()` before it measures and `write_results()` at the end; the results
file then carries a `provenance` key that `bench/readme_table.py` shows beside each figure:

    prov = start(__file__, argv)
    ...measure...
    write_results(results_path, payload, prov)   # finishes prov: load average at end, wall time

`start()` never imports torch: the GPU is read from torch only when the bench has imported it
already, else from `nvidia-smi` when present. Package versions come from installed metadata.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
PACKAGES = ("torch", "transformers", "sqlalchemy")


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.rstrip("\n")


RESULTS_PREFIX = "bench/results/"


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """HEAD's commit and whether tracked files differ from it (the measured code may not be
    the commit's). Untracked files are not counted, nor results files under `bench/results/`:
    benches write them, and one bench of a series (`make bench`) rewrites a file the next one
    would otherwise call a change to the measured code."""
    commit = _git(root, "rev-parse", "HEAD") or None
    changed = _git(root, "status", "--porcelain", "--untracked-files=no")
    paths = [line[3:] for line in changed.splitlines()] if changed else []
    paths = [p for p in paths if not p.startswith(RESULTS_PREFIX)]
    return {
        "commit": commit,
        "dirty": bool(paths) if changed is not None else None,
        "dirty_paths": paths[:20],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Widest vector/matrix extension first: what decides CPU speed in torch (bf16 needs one of
# the first three in hardware; model.loading.cpu_bf16_fast computes in float32 without).
_CPU_EXTENSIONS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2", "avx")


def _cpu_extension() -> str | None:
    """The CPU's widest vector extension of `_CPU_EXTENSIONS`, from /proc/cpuinfo's flags."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return next((e for e in _CPU_EXTENSIONS if e in flags), None)
    except OSError:
        pass
    return None


def _ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gpu() -> str:
    torch = sys.modules.get("torch")
    if torch is not None:
        if torch.cuda.is_available():
            return ", ".join(
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            )
        return "no GPU"
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
            if names:
                return ", ".join(names)
        except (OSError, subprocess.SubprocessError):
            pass
    return "no GPU"


def hardware() -> dict[str, Any]:
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = cores
    return {
        "cpu": _cpu_model(),
        "cpu_extension": _cpu_extension(),
        "machine": platform.machine(),
        "logical_cores": cores,
        "usable_cores": usable,
        "ram_bytes": _ram_bytes(),
        "gpu": _gpu(),
    }


def cpu_label(hw: dict[str, Any]) -> str:
    """Cores, model and widest extension, e.g. "2-core AMD EPYC (avx2)" (older records: none)."""
    ext = f" ({hw['cpu_extension']})" if hw.get("cpu_extension") else ""
    return f"{hw.get('logical_cores')}-core {hw.get('cpu')}{ext}"


def hardware_summary(hw: dict[str, Any]) -> str:
    """One line, e.g. "2-core Intel(R) Xeon(R) Processor (avx512_bf16), 7.8 GiB RAM, no GPU"."""
    ram = f", {hw['ram_bytes'] / 2**30:.1f} GiB RAM" if hw.get("ram_bytes") else ""
    return f"{cpu_label(hw)}{ram}, {hw.get('gpu')}"


def versions(packages: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Provenance:
    """Taken at a bench's start; `finish()` adds the end's load average and the wall time."""

    def __init__(self, script: str, argv: Sequence[str] | None = None) -> None:
        path = Path(script).resolve()
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        args = list(sys.argv[1:] if argv is None else argv)
        self._t0 = time.perf_counter()
        self.record: dict[str, Any] = {
            "git": git_state(),
            "command": shlex.join(["python", str(shown), *args]),
            "started_at": _now(),
            "hardware": hardware(),
            "versions": versions(),
            "load_average_start": _load(),
        }
        self.finished = False

    def finish(self) -> dict[str, Any]:
        """Record the end (idempotent: the first call's end stands) and return the dict."""
        if not self.finished:
            self.record["hardware"]["gpu"] = _gpu()  # torch may have been imported since
            self.record["finished_at"] = _now()
            self.record["load_average_end"] = _load()
            self.record["wall_s"] = round(time.perf_counter() - self._t0, 2)
            self.finished = True
        return self.record

    @property
    def summary(self) -> str:
        return hardware_summary(self.record["hardware"])


def start(script: str, argv: Sequence[str] | None = None) -> Provenance:
    """Provenance of the bench at `script` (its `__file__`) run with `argv` (default:
    sys.argv[1:]); call before measuring."""
    return Provenance(script, argv)


def resolve_results(path: Path | str | None, default_name: str) -> Path:
    """Where a bench writes: `path` itself, or `path/default_name` when `path` is a folder
    (existing, or written with a trailing slash); default bench/results/<default_name>.

    Checks up front that the folder can be created and written, so a long run does not fail
    at its end. Raises ValueError with a message for the command line."""
    if path is None or str(path) == "":
        out = RESULTS_DIR / default_name
    else:
        p = Path(path).expanduser()
        out = p / default_name if p.is_dir() or str(path).endswith(os.sep) else p
    out = out.resolve()
    if out.suffix != ".json":
        raise ValueError(f"--results must name a .json file or a folder, not {str(path)!r}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write results to {out}: {exc.strerror or exc}") from None
    return out


def results_or_exit(parser: Any, path: Path | str | None, default_name: str) -> Path:
    """`resolve_results` for a bench's command line: a results path that cannot be written is
    the parser's clear error (exit 2) before any work, not a traceback at the end."""
    try:
        return resolve_results(path, default_name)
    except ValueError as exc:
        parser.error(str(exc))
        raise  # parser.error exits; this keeps type checkers sure of the return


def write_results(
    path: Path | str,
    payload: dict[str, Any],
    prov: Provenance | dict[str, Any],
    *,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """Write `payload` plus `provenance` as JSON to `path`, atomically: the whole new file or
    the old one, never a half-written one (a temp file in the same folder, then rename).
    Creates parent folders. `default` is passed to json.dumps for values it cannot encode."""
    path = Path(path)
    record = prov.finish() if isinstance(prov, Provenance) else prov
    text = json.dumps({**payload, "provenance": record}, indent=2, default=default) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
