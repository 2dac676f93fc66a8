"""The identity of a post of several images: a small descriptor blob listing them in order.

An item's `blob_sha256` names the bytes it was made from; a post of N > 1 images has no single
file, so it is named by this descriptor (the SHA-256 of each image, in order). The same images
in the same order are the same post (a duplicate); any other post is new, even one that shares
its cover with another item. A one-image post is named by its image, exactly like a single
image. The descriptor is stored in the blob store like any other evidence.

    sha = hashlib.sha256(post_descriptor(["ab12...", "cd34..."])).hexdigest()
"""

from __future__ import annotations

import json
from collections.abc import Sequence

POST_MIME = "application/vnd.warden.post+json"


def post_descriptor(media_sha256: Sequence[str]) -> bytes:
    """Canonical bytes of a post made of these media (order matters)."""
    return json.dumps(
        {"warden_post": 1, "media": list(media_sha256)}, separators=(",", ":"), sort_keys=True
    ).encode()
