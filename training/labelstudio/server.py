"""Install and run a local Label Studio server in its own virtualenv (tests, bench, dev).

Label Studio's pins (exact Django, old pytz, openai<2) clash with the project's, so the server
lives in `~/.cache/warden/labelstudio-<ver>/` and Warden talks to it only over HTTP through
`label-studio-sdk`. The first start on a fresh data dir runs ~400 migrations (~75 s); a
migrated data dir is kept as a template (`~/.cache/warden/ls-datadir-template-<ver>`) and
copied for every new server, which then starts in a few seconds.

Run: python -m training.labelstudio.server install      # venv + template, idempotent
     python -m training.labelstudio.server run --port 8080 --data-dir /tmp/ls
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from storage.errors import WardenError

log = logging.getLogger(__name__)

LS_VERSION = "1.23.2"
CACHE_DIR = Path(os.environ.get("WARDEN_CACHE_DIR", Path.home() / ".cache" / "warden"))
# Credentials baked into the template data dir: loopback-only test servers, never production.
ADMIN_EMAIL = "admin@warden.test"
ADMIN_PASSWORD = "warden-admin-pass"
ADMIN_TOKEN = "0123456789abcdef0123456789abcdef01234567"
# Label Studio reads these unprefixed variables too; a stray HOST or PORT breaks its start.
_CLASHING_ENV = ("HOST", "PORT", "USERNAME", "PASSWORD", "DEBUG")


def venv_dir(version: str = LS_VERSION) -> Path:
    return CACHE_DIR / f"labelstudio-{version}"


def template_dir(version: str = LS_VERSION) -> Path:
    return CACHE_DIR / f"ls-datadir-template-{version}"


def executable(version: str = LS_VERSION) -> Path:
    return venv_dir(version) / "bin" / "label-studio"


def ensure_installed(version: str = LS_VERSION) -> Path:
    """Create the server venv and pip install `label-studio==<version>`; idempotent.

    A marker file is written only after pip succeeds, so an interrupted install is resumed
    (pip skips what is already there) rather than trusted.
    """
    venv = venv_dir(version)
    exe = executable(version)
    marker = venv / ".warden-installed"
    if exe.exists() and marker.exists():
        return exe
    if not (venv / "bin" / "python").exists():
        log.warning("installing label-studio %s into %s (~2.5 min)", version, venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            f"label-studio=={version}",
        ],
        check=True,
    )
    marker.write_text(version + "\n")
    return exe


def _die_with_parent() -> None:
    """Linux: SIGTERM the server when the process that started it dies (a killed pytest run
    must not leave servers behind)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLASHING_ENV}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LABEL_STUDIO_USERNAME=ADMIN_EMAIL,
        LABEL_STUDIO_PASSWORD=ADMIN_PASSWORD,
        LABEL_STUDIO_USER_TOKEN=ADMIN_TOKEN,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        # Webhooks go to Warden on 127.0.0.1, which SSRF protection refuses.
        SSRF_PROTECTION_ENABLED="false",
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
    )
    return env


@dataclass
class LabelStudioServer:
    """One Label Studio process on 127.0.0.1:<port> over `data_dir`; restartable."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    version: str = LS_VERSION
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        return ADMIN_TOKEN

    def start(self, timeout_s: float = 240.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        exe = ensure_installed(self.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path or self.data_dir / "server.log"
        out = open(log_path, "ab")  # noqa: SIM115 - owned by the child process
        cmd = [
            str(exe),
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--host",
            self.url,
        ]
        self._proc = subprocess.Popen(
            cmd,
            env=server_env(self.data_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        out.close()
        self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise WardenError(
                    f"Label Studio exited with {self._proc.returncode}; "
                    f"see {self.log_path or self.data_dir / 'server.log'}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise WardenError(f"Label Studio did not become healthy on {self.url} in {timeout_s}s")

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the server (and its process group); SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


def ensure_template(version: str = LS_VERSION) -> Path:
    """A migrated data dir with the admin user and token, built once (~75 s)."""
    tpl = template_dir(version)
    if (tpl / "label_studio.sqlite3").exists():
        return tpl
    build = tpl.with_name(tpl.name + ".building")
    shutil.rmtree(build, ignore_errors=True)
    server = LabelStudioServer(data_dir=build, version=version)
    try:
        server.start(timeout_s=600)
    finally:
        server.stop()
    for junk in ("server.log",):
        (build / junk).unlink(missing_ok=True)
    shutil.rmtree(tpl, ignore_errors=True)
    build.rename(tpl)
    return tpl


def fresh_data_dir(dest: Path, version: str = LS_VERSION) -> Path:
    """Copy the migrated template to `dest` (which must not exist yet)."""
    shutil.copytree(ensure_template(version), dest)
    return dest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="install the server venv and build the data-dir template")
    run = sub.add_parser("run", help="run a server until interrupted")
    run.add_argument("--port", type=int, default=8080)
    run.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.cmd == "install":
        print(ensure_installed())
        print(ensure_template())
        return
    if not args.data_dir.exists():
        fresh_data_dir(args.data_dir)
    server = LabelStudioServer(data_dir=args.data_dir, port=args.port)
    server.start()
    print(f"Label Studio at {server.url} (api key {server.api_key}); Ctrl-C stops it")
    try:
        while server.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
