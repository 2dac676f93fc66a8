"""How Label Studio gets to see an image: a signed, expiring Warden URL, or a data URI.

Warden never runs an open file server. A task's image is either
- a URL to the app's image route, `/img/{item_id}?v=view&g=0&exp=EPOCH&sig=HEX&a=ext` (and
  `&m=K` for medium K of a post or video, signed into the URL like the rest), signed
  by `storage.signing.Signer` (the same signer the app verifies with) under
  `settings.ui.secret_key` or the key generated once into the data dir. Annotators' browsers
  have no Warden cookie, so these URLs are "external": signed under their own purpose and bound
  to no session (the workbench's own image URLs need the session's cookie, and neither kind
  can be turned into the other);
- or a `data:image/...;base64,` URI of the view image, for tests and small deployments where
  Label Studio cannot reach Warden.

    url = signed_image_url(settings, item_id, ttl_s=7 * 86400)
    url2 = signed_image_url(settings, item_id, ttl_s=7 * 86400, medium=2)   # the third image
    ok = verify_image_signature(settings, item_id, "view", False, exp, sig)
"""

from __future__ import annotations

import base64

from storage.settings import Settings
from storage.signing import Signer, load_secret_key

VIEW = "view"


def signed_image_url(
    settings: Settings,
    item_id: int,
    *,
    ttl_s: int,
    variant: str = VIEW,
    grey: bool = False,
    now: float | None = None,
    medium: int = 0,
) -> str:
    """Absolute URL (under `settings.labelstudio.public_base_url`) valid for `ttl_s` seconds,
    for medium `medium` of the item (0: the cover)."""
    signer = Signer(load_secret_key(settings))
    base = settings.labelstudio.public_base_url.rstrip("/")
    return signer.external_image_url(
        item_id, variant, grey=grey, ttl_s=int(ttl_s), prefix=base, now=now, medium=medium
    )


def verify_image_signature(
    settings: Settings,
    item_id: int,
    variant: str,
    grey: bool,
    exp: int,
    sig: str,
    *,
    now: float | None = None,
    medium: int = 0,
) -> bool:
    """True only for an unexpired URL signed for exactly this item, medium, variant and grey
    flag."""
    return Signer(load_secret_key(settings)).check_image(
        item_id, variant, grey, exp, sig, now=now, medium=medium
    )


def image_data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
