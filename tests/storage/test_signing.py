"""Signing: the secret key file (atomic, never empty, never short), session tokens, and image
URLs bound to a session (workbench) or to no session (Label Studio), never interchangeable."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from storage.errors import WardenError
from storage.settings import Settings
from storage.signing import MIN_KEY_BYTES, Signer, load_secret_key

REPO = Path(__file__).resolve().parents[2]


def _settings(data_dir: Path, key: str | None = None) -> Settings:
    ui = {"secret_key": SecretStr(key)} if key is not None else {}
    return Settings(data_dir=data_dir, ui=ui)


def test_a_new_key_file_is_private_and_long(tmp_path: Path) -> None:
    key = load_secret_key(_settings(tmp_path / "d"))
    path = tmp_path / "d" / "secret_key"
    assert len(key) >= MIN_KEY_BYTES and path.read_bytes().strip() == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_secret_key(_settings(tmp_path / "d")) == key  # the next process agrees
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temporary left


@pytest.mark.parametrize("content", [b"", b"\n", b"0123456789abcdef0123456789abcde"])
def test_an_empty_or_short_key_file_is_refused(tmp_path: Path, content: bytes) -> None:
    # What a reader saw under the old O_EXCL-then-write scheme while the writer was between
    # the two steps: HMAC with that key lets anyone forge a session.
    (tmp_path / "secret_key").write_bytes(content)
    with pytest.raises(WardenError, match="at least 32"):
        load_secret_key(_settings(tmp_path))


def test_a_short_configured_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WardenError, match="at least 32"):
        load_secret_key(_settings(tmp_path, "s" * 31))
    assert load_secret_key(_settings(tmp_path, "s" * 32)) == b"s" * 32


def _race(settings: Settings, n: int) -> list[bytes | BaseException]:
    barrier = threading.Barrier(n)
    keys: list[bytes | BaseException] = []

    def load() -> None:
        barrier.wait()
        try:
            keys.append(load_secret_key(settings))
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            keys.append(exc)

    threads = [threading.Thread(target=load) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return keys


def test_threads_racing_to_create_the_key_all_get_the_same_whole_key(tmp_path: Path) -> None:
    # The old O_EXCL-then-write code handed an empty key to a racing reader in about a third
    # of these rounds.
    for round_ in range(40):
        keys = _race(_settings(tmp_path / f"r{round_}"), 8)
        assert len(set(keys)) == 1, keys
        assert isinstance(keys[0], bytes) and len(keys[0]) >= MIN_KEY_BYTES


def test_processes_racing_to_create_the_key_agree(tmp_path: Path) -> None:
    code = (
        "import sys, time; from storage.settings import Settings;"
        "from storage.signing import load_secret_key;"
        "s = Settings(data_dir=sys.argv[1]); t = float(sys.argv[2]);"
        "time.sleep(max(0.0, t - time.time())); print(load_secret_key(s).decode())"
    )
    import time

    for round_ in range(2):
        data_dir = tmp_path / f"p{round_}"
        start = time.time() + 3.0
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(data_dir), str(start)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(5)
        ]
        outs = [p.communicate(timeout=60) for p in procs]
        keys = {out.strip() for out, _ in outs}
        assert len(keys) == 1 and len(keys.pop()) >= MIN_KEY_BYTES, outs


SIGNER = Signer(b"k" * 32)


def test_session_tokens_carry_the_session_id_and_refuse_tampering() -> None:
    token = SIGNER.make_session("alice", "sid-1", 60, now=1000)
    claims = SIGNER.read_session(token, now=1001)
    assert claims is not None and (claims.username, claims.session_id) == ("alice", "sid-1")
    assert SIGNER.read_session(token, now=1060) is None  # expired
    assert Signer(b"j" * 32).read_session(token, now=1001) is None
    assert SIGNER.read_session(token[:-1] + "\u00e9", now=1001) is None  # no TypeError
    assert SIGNER.read_session(SIGNER.make_session("alice", "", 60, now=1000), now=1001) is None


def test_image_urls_are_bound_to_their_session() -> None:
    url = SIGNER.image_url(5, "view", session_id="sid-a", ttl_s=60, now=1000)
    q = dict(p.split("=") for p in url.split("?", 1)[1].split("&"))
    exp, sig = int(q["exp"]), q["sig"]
    assert "a" not in q and "sid-a" not in url
    assert SIGNER.check_image(5, "view", False, exp, sig, now=1001, session_id="sid-a")
    assert not SIGNER.check_image(5, "view", False, exp, sig, now=1001, session_id="sid-b")
    assert not SIGNER.check_image(5, "view", False, exp, sig, now=1001, session_id="")
    # Not usable as an external (no-cookie) URL either.
    assert not SIGNER.check_image(5, "view", False, exp, sig, now=1001)
    with pytest.raises(ValueError, match="session"):
        SIGNER.image_url(5, "view", session_id="", ttl_s=60)


def test_external_urls_need_no_session_and_cannot_pose_as_a_sessions() -> None:
    url = SIGNER.external_image_url(5, "view", ttl_s=60, now=1000)
    q = dict(p.split("=") for p in url.split("?", 1)[1].split("&"))
    exp, sig = int(q["exp"]), q["sig"]
    assert q["a"] == "ext"
    assert SIGNER.check_image(5, "view", False, exp, sig, now=1001)
    assert not SIGNER.check_image(5, "blur", False, exp, sig, now=1001)
    assert not SIGNER.check_image(5, "view", False, exp, sig, now=1001, session_id="sid-a")
    assert not SIGNER.check_image(5, "view", False, exp, sig, now=1061)


def test_external_urls_name_their_medium() -> None:
    cover = SIGNER.external_image_url(5, "view", ttl_s=60, now=1000)
    third = SIGNER.external_image_url(5, "view", ttl_s=60, now=1000, medium=2)
    assert "&m=" not in cover and third.endswith("&m=2")
    q = dict(p.split("=") for p in third.split("?", 1)[1].split("&"))
    exp, sig = int(q["exp"]), q["sig"]
    assert SIGNER.check_image(5, "view", False, exp, sig, now=1001, medium=2)
    assert not SIGNER.check_image(5, "view", False, exp, sig, now=1001, medium=1)
    assert not SIGNER.check_image(5, "view", False, exp, sig, now=1001)
    with pytest.raises(ValueError, match="medium"):
        SIGNER.external_image_url(5, "view", ttl_s=60, medium=-1)
