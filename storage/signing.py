"""HMAC signing for session cookies and expiring image URLs (used by the app and by Label Studio).

One secret key (settings.ui.secret_key, or a random key generated once into the data dir, so
several processes and restarts share it) signs two kinds of token, each with its own purpose
prefix so a token of one kind can never be replayed as the other:

- session cookie: base64url(JSON {u, iat, exp, n}) + "." + hex HMAC-SHA256;
- image URL: `/img/{item_id}?v=blur|view&g=0|1&exp=EPOCH&sig=HEX` (bound to item, variant,
  greyscale flag and expiry).
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

from storage.settings import Settings

SESSION_PURPOSE = b"session\x00"
IMAGE_PURPOSE = b"image\x00"
IMAGE_VARIANTS = ("blur", "view")


def load_secret_key(settings: Settings) -> bytes:
    """The configured key, else a random one persisted (0600) under the data dir."""
    if settings.ui.secret_key is not None:
        value = settings.ui.secret_key.get_secret_value()
        if len(value) < 16:
            raise ValueError("WARDEN_UI__SECRET_KEY must be at least 16 characters")
        return value.encode()
    path = Path(settings.data_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = secrets.token_hex(32)
        # O_EXCL: two processes starting at once agree on whichever wrote first.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(key)
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class SessionToken:
    username: str
    issued_at: int
    expires_at: int


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: bytes, message: bytes) -> str:
        return hmac.new(self._key, purpose + message, hashlib.sha256).hexdigest()

    # --- sessions ---------------------------------------------------------------------------

    def make_session(self, username: str, ttl_s: int, now: float | None = None) -> str:
        now_i = int(now if now is not None else time.time())
        body = {"u": username, "iat": now_i, "exp": now_i + ttl_s, "n": secrets.token_hex(8)}
        raw = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode())
        payload = raw.rstrip(b"=")
        return payload.decode() + "." + self._mac(SESSION_PURPOSE, payload)

    def read_session(self, token: str | None, now: float | None = None) -> SessionToken | None:
        """The session's claims, or None if missing, tampered with, malformed or expired."""
        if not token or "." not in token or len(token) > 4096:
            return None
        payload, sig = token.rsplit(".", 1)
        expected = self._mac(SESSION_PURPOSE, payload.encode())
        if not hmac.compare_digest(sig, expected):
            return None
        try:
            padded = payload + "=" * (-len(payload) % 4)
            body = json.loads(base64.urlsafe_b64decode(padded.encode()))
            session = SessionToken(str(body["u"]), int(body["iat"]), int(body["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= (now if now is not None else time.time()):
            return None
        return session

    # --- image URLs -------------------------------------------------------------------------

    def _image_message(self, item_id: int, variant: str, grey: bool, exp: int) -> bytes:
        return f"{int(item_id)}:{variant}:{int(grey)}:{int(exp)}".encode()

    def image_url(
        self,
        item_id: int,
        variant: str,
        *,
        grey: bool = False,
        ttl_s: int = 900,
        prefix: str = "",
        now: float | None = None,
    ) -> str:
        if variant not in IMAGE_VARIANTS:
            raise ValueError(f"unknown image variant {variant!r}")
        exp = int(now if now is not None else time.time()) + ttl_s
        sig = self._mac(IMAGE_PURPOSE, self._image_message(item_id, variant, grey, exp))
        return f"{prefix}/img/{int(item_id)}?v={variant}&g={int(grey)}&exp={exp}&sig={sig}"

    def check_image(
        self,
        item_id: int,
        variant: str,
        grey: bool,
        exp: int,
        sig: str,
        now: float | None = None,
    ) -> bool:
        if variant not in IMAGE_VARIANTS:
            return False
        if exp <= (now if now is not None else time.time()):
            return False
        expected = self._mac(IMAGE_PURPOSE, self._image_message(item_id, variant, grey, exp))
        return hmac.compare_digest(sig, expected)
