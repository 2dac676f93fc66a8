"""HMAC signing for session cookies and expiring image URLs (used by the app and by Label Studio).

One secret key (settings.ui.secret_key, or a random key generated once into the data dir, so
several processes and restarts share it) signs three kinds of token, each with its own purpose
prefix so a token of one kind can never be replayed as another:

- session cookie: base64url(JSON {u, sid, iat, exp}) + "." + hex HMAC-SHA256; `sid` names the
  server-side session row (storage.sessions), which is what logout and revocation end;
- image URL for the workbench: `/img/{item_id}?v=blur|view&g=0|1&exp=EPOCH&sig=HEX`, bound to
  item, variant, greyscale flag, expiry AND the session it was minted for: the route serves it
  only with that session's cookie, so a leaked URL is useless to anyone else;
- image URL for an outside reader (Label Studio's annotators, whose browsers have no Warden
  cookie): the same plus `&a=ext`, signed under its own purpose, bound to no session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from storage.errors import WardenError
from storage.settings import Settings

SESSION_PURPOSE = b"session\x00"
IMAGE_PURPOSE = b"image\x00"
EXTERNAL_IMAGE_PURPOSE = b"image-external\x00"
IMAGE_VARIANTS = ("blur", "view")
# The `a` query value of an image URL minted for an outside reader.
EXTERNAL_AUDIENCE = "ext"
MIN_KEY_BYTES = 32
KEY_FILE = "secret_key"


def load_secret_key(settings: Settings) -> bytes:
    """The configured key, else a random one persisted (0600) under the data dir.

    The file is created atomically: the key is written and fsynced to a private temporary
    file, then hard-linked into place, which fails if another process got there first (that
    process's key wins, ours is dropped). A reader therefore sees no file or a whole key, never
    an empty one. A key shorter than 32 bytes is refused: HMAC with a short or empty key would
    let anyone forge a session.
    """
    if settings.ui.secret_key is not None:
        value = settings.ui.secret_key.get_secret_value().encode()
        if len(value) < MIN_KEY_BYTES:
            raise WardenError(
                f"WARDEN_UI__SECRET_KEY is {len(value)} bytes; it must be at least "
                f"{MIN_KEY_BYTES} (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return value
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_key_file(path)
    return _read_key_file(path)


def _create_key_file(path: Path) -> None:
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # never replaces an existing key
        except FileExistsError:
            pass
        except OSError as exc:
            raise WardenError(
                f"cannot create the secret key file {path} ({exc.strerror}); set "
                "WARDEN_UI__SECRET_KEY instead"
            ) from None
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_key_file(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise WardenError(
            f"the secret key file {path} holds {len(key)} bytes; at least {MIN_KEY_BYTES} are "
            "needed. Delete it to have a new one generated (everyone is logged out), or set "
            "WARDEN_UI__SECRET_KEY"
        )
    return key


@dataclass(frozen=True)
class SessionToken:
    username: str
    session_id: str
    issued_at: int
    expires_at: int


class Signer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise WardenError("refusing to sign with a key shorter than 16 bytes")
        self._key = key

    def _mac(self, purpose: bytes, message: bytes) -> str:
        return hmac.new(self._key, purpose + message, hashlib.sha256).hexdigest()

    # --- sessions ---------------------------------------------------------------------------

    def make_session(
        self, username: str, session_id: str, ttl_s: int, now: float | None = None
    ) -> str:
        now_i = int(now if now is not None else time.time())
        body = {"u": username, "sid": session_id, "iat": now_i, "exp": now_i + ttl_s}
        raw = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode())
        payload = raw.rstrip(b"=")
        return payload.decode() + "." + self._mac(SESSION_PURPOSE, payload)

    def read_session(self, token: str | None, now: float | None = None) -> SessionToken | None:
        """The session's claims, or None if missing, tampered with, malformed or expired.

        A valid signature says only that this server issued the token; whether the session is
        still open is the database's answer (storage.sessions.session_user).
        """
        if not token or "." not in token or len(token) > 4096:
            return None
        payload, sig = token.rsplit(".", 1)
        expected = self._mac(SESSION_PURPOSE, payload.encode())
        if not hmac.compare_digest(sig.encode(), expected.encode()):
            return None
        try:
            padded = payload + "=" * (-len(payload) % 4)
            body = json.loads(base64.urlsafe_b64decode(padded.encode()))
            session = SessionToken(
                str(body["u"]), str(body["sid"]), int(body["iat"]), int(body["exp"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        if not session.session_id or session.expires_at <= (
            now if now is not None else time.time()
        ):
            return None
        return session

    # --- image URLs -------------------------------------------------------------------------

    @staticmethod
    def _image_message(
        item_id: int, variant: str, grey: bool, exp: int, session_id: str | None, medium: int = 0
    ) -> bytes:
        # The session id enters as a hash, so the URL never carries anything cookie-like.
        bound = hashlib.sha256(session_id.encode()).hexdigest() if session_id else ""
        # Medium 0 (the cover; a single image) keeps the message URLs had before media existed.
        tail = f":m{int(medium)}" if medium else ""
        return f"{int(item_id)}:{variant}:{int(grey)}:{int(exp)}:{bound}{tail}".encode()

    def _image_sig(
        self,
        item_id: int,
        variant: str,
        grey: bool,
        exp: int,
        session_id: str | None,
        medium: int = 0,
    ) -> str:
        purpose = IMAGE_PURPOSE if session_id is not None else EXTERNAL_IMAGE_PURPOSE
        message = self._image_message(item_id, variant, grey, exp, session_id, medium)
        return self._mac(purpose, message)

    def image_url(
        self,
        item_id: int,
        variant: str,
        *,
        session_id: str,
        grey: bool = False,
        ttl_s: int = 900,
        prefix: str = "",
        now: float | None = None,
        medium: int = 0,
    ) -> str:
        """A workbench URL, served only together with the cookie of session `session_id`.
        `medium`: the position of one image of a post / frame of a video (0 = the cover)."""
        if variant not in IMAGE_VARIANTS:
            raise ValueError(f"unknown image variant {variant!r}")
        if not session_id:
            raise ValueError("a workbench image URL needs the session it is for")
        if medium < 0:
            raise ValueError("a medium position is 0 or more")
        exp = int(now if now is not None else time.time()) + ttl_s
        sig = self._image_sig(item_id, variant, grey, exp, session_id, medium)
        tail = f"&m={int(medium)}" if medium else ""
        return f"{prefix}/img/{int(item_id)}?v={variant}&g={int(grey)}&exp={exp}&sig={sig}{tail}"

    def external_image_url(
        self,
        item_id: int,
        variant: str,
        *,
        grey: bool = False,
        ttl_s: int,
        prefix: str = "",
        now: float | None = None,
        medium: int = 0,
    ) -> str:
        """A URL for a reader without a Warden session (Label Studio's annotators).
        `medium`: the position of one image of a post / frame of a video (0 = the cover)."""
        if variant not in IMAGE_VARIANTS:
            raise ValueError(f"unknown image variant {variant!r}")
        if medium < 0:
            raise ValueError("a medium position is 0 or more")
        exp = int(now if now is not None else time.time()) + ttl_s
        sig = self._image_sig(item_id, variant, grey, exp, None, medium)
        tail = f"&m={int(medium)}" if medium else ""
        return (
            f"{prefix}/img/{int(item_id)}?v={variant}&g={int(grey)}&exp={exp}&sig={sig}"
            f"&a={EXTERNAL_AUDIENCE}{tail}"
        )

    def check_image(
        self,
        item_id: int,
        variant: str,
        grey: bool,
        exp: int,
        sig: str,
        now: float | None = None,
        *,
        session_id: str | None = None,
        medium: int = 0,
    ) -> bool:
        """True for an unexpired URL signed for exactly these values (medium included): a
        workbench URL of session `session_id`, or, when `session_id` is None, an external URL."""
        if variant not in IMAGE_VARIANTS or medium < 0:
            return False
        if exp <= (now if now is not None else time.time()):
            return False
        if session_id is not None and not session_id:
            return False
        expected = self._image_sig(item_id, variant, grey, exp, session_id, medium)
        return hmac.compare_digest(sig.encode(), expected.encode())
