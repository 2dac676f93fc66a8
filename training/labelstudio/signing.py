"""How Label Studio gets to see an image: a signed, expiring Warden URL, or a data URI.

Warden never runs an open file server. A task's image is either
- a URL to the app's image route, `/img/{item_id}?v=view&g=0&exp=EPOCH&sig=HEX`, signed with
  HMAC-SHA256 under `settings.ui.secret_key` (or the key the app generated into the data
  dir). The message format and purpose prefix are those of `app.signing.Signer`, which
  verifies them (a test checks both sides agree); `training` cannot import `app`, hence the
  small duplicate here;
- or a `data:image/...;base64,` URI of the view image, for tests and small deployments where
  Label Studio cannot reach Warden.

    url = signed_image_url(settings, item_id, ttl_s=7 * 86400)
    ok = verify_image_signature(settings, item_id, "view", False, exp, sig)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from storage.settings import Settings

IMAGE_PURPOSE = b"image\x00"
VIEW = "view"


def secret_key(settings: Settings) -> bytes:
    """The configured UI key, else the random key persisted under the data dir (created once,
    0600, first writer wins: the same rule as the app, so both sign with one key)."""
    if settings.ui.secret_key is not None:
        value = settings.ui.secret_key.get_secret_value()
        if len(value) < 16:
            raise ValueError("WARDEN_UI__SECRET_KEY must be at least 16 characters")
        return value.encode()
    path = Path(settings.data_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _mac(key: bytes, item_id: int, variant: str, grey: bool, exp: int) -> str:
    message = f"{int(item_id)}:{variant}:{int(grey)}:{int(exp)}".encode()
    return hmac.new(key, IMAGE_PURPOSE + message, hashlib.sha256).hexdigest()


def signed_image_url(
    settings: Settings,
    item_id: int,
    *,
    ttl_s: int,
    variant: str = VIEW,
    grey: bool = False,
    now: float | None = None,
) -> str:
    """Absolute URL (under `settings.labelstudio.public_base_url`) valid for `ttl_s` seconds."""
    exp = int(now if now is not None else time.time()) + int(ttl_s)
    sig = _mac(secret_key(settings), item_id, variant, grey, exp)
    base = settings.labelstudio.public_base_url.rstrip("/")
    return f"{base}/img/{int(item_id)}?v={variant}&g={int(grey)}&exp={exp}&sig={sig}"


def verify_image_signature(
    settings: Settings,
    item_id: int,
    variant: str,
    grey: bool,
    exp: int,
    sig: str,
    *,
    now: float | None = None,
) -> bool:
    """True only for an unexpired URL signed for exactly this item, variant and grey flag."""
    if exp <= (now if now is not None else time.time()):
        return False
    expected = _mac(secret_key(settings), item_id, variant, grey, exp)
    return hmac.compare_digest(sig, expected)


def image_data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
