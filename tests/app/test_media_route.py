"""The image route serves each medium of a post by position, only through a URL signed for
that very medium (a URL for one image cannot be turned into another's), on the live app."""

from __future__ import annotations

import io
import json

import httpx
from PIL import Image

from app.context import SESSION_COOKIE as COOKIE
from storage.ingest import ingest_paths
from storage.signing import Signer
from tests.app.conftest import LiveApp, make_png


def test_each_medium_has_its_own_signed_url(live_app: LiveApp) -> None:
    folder = live_app.workdir / "media-route"
    folder.mkdir()
    colours = [(250, 250, 250), (10, 10, 10), (200, 30, 30)]
    for k, colour in enumerate(colours):
        make_png(folder / f"m{k}.png", 7100 + k, colour=colour)
    (folder / "post.jsonl").write_text(
        json.dumps({"images": ["m0.png", "m1.png", "m2.png"], "text": "post"}) + "\n"
    )
    [r] = ingest_paths(live_app.engine, live_app.settings, [folder / "post.jsonl"]).results
    assert r.status == "accepted" and r.item_id is not None
    item_id = r.item_id
    signer = Signer((live_app.settings.data_dir / "secret_key").read_text().strip().encode())
    live_app.add_user("media_route", "moderator")
    cookie = live_app.login_cookie("media_route")
    sid = signer.read_session(cookie).session_id
    client = httpx.Client(cookies={COOKIE: cookie})
    base = live_app.base_url

    def mean(data: bytes) -> tuple[int, ...]:
        small = Image.open(io.BytesIO(data)).convert("RGB").resize((1, 1), Image.Resampling.BOX)
        return small.getpixel((0, 0))

    cover = signer.image_url(item_id, "view", session_id=sid)
    assert "&m=" not in cover  # the cover's URL is the single-image URL
    got = {}
    for k in range(3):
        res = client.get(base + signer.image_url(item_id, "view", session_id=sid, medium=k))
        assert res.status_code == 200, (k, res.text)
        got[k] = mean(res.content)
    assert got[0] == mean(client.get(base + cover).content)
    assert got[1][0] < 120 < got[0][0]  # the dark image is image 2, the light one image 1
    assert got[2][0] > got[2][1] + 20  # the red one is image 3
    assert len(set(got.values())) == 3

    url = signer.image_url(item_id, "blur", session_id=sid, medium=2)
    refused = [
        url.replace("&m=2", "&m=1"),  # signed for image 3, asking for image 2
        url.replace("&m=2", ""),  # ... or for the cover
        url.replace("v=blur", "v=view"),  # the blurred one's signature for the raw one
        cover + "&m=2",  # the cover's signature for image 3
    ]
    for bad in refused:
        assert client.get(base + bad).status_code == 403, bad
    missing = signer.image_url(item_id, "view", session_id=sid, medium=9)
    assert client.get(base + missing).status_code == 404
