"""Every image of a post through a real Label Studio: a 3-image post goes out as an image list
whose signed URLs resolve to each image, its evidence boxes at their `item_index`, and a box
an annotator draws on image 3 comes back with position 2 in image 3's pixels; in Chromium the
annotator pages through the images and sees the model's box on image 2, the content text
inert; a project that held one-image tasks before keeps its cover-only config and still
round-trips."""

from __future__ import annotations

import io
import random
from dataclasses import asdict
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from storage.blobs import BlobStore
from storage.db import unit_of_work
from storage.media import NewMedium, add_media, record_medium_signals
from storage.models import Blob, Decision, Item, Prediction
from storage.policy import Policy
from storage.settings import Settings
from tests.labelstudio.conftest import MakeItems, WebhookServer, choices_result, wait_for
from training.labelstudio.cli import app
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import (
    ProjectState,
    label_config,
    load_state,
    save_state,
    setup,
    shows_all_media,
)
from training.labelstudio.server import ADMIN_EMAIL, ADMIN_PASSWORD, LabelStudioServer
from training.labelstudio.sync import push, reconcile

pytestmark = pytest.mark.labelstudio

# Three images of different shapes, so a box converted with the wrong image's size is wrong.
SIZES = [(32, 32), (64, 32), (40, 80)]
COLOURS = [(200, 30, 30), (30, 160, 30), (30, 30, 200)]
HOSTILE = "<img src=x onerror=alert(1)>BUY"
CAPTION = "<script>alert(2)</script>caption"


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    im = Image.new("RGB", size, colour)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _make_post(settings: Settings, engine: Engine, policy: Policy, regions: list[dict]) -> int:
    """A scored 3-image post (one item, media at positions 0..2 of one colour each, OCR text on
    image 2) whose prediction carries `regions` as model.regions stores them."""
    store = BlobStore(settings.blobs_path)
    shas = []
    with unit_of_work(engine) as s:
        for k, (w, h) in enumerate(SIZES):
            data = _png((w, h), COLOURS[k])
            sha = store.put_bytes(data)
            if s.get(Blob, sha) is None:
                s.add(Blob(sha256=sha, size_bytes=len(data), mime="image/png", width=w, height=h))
            shas.append(sha)
        item = Item(blob_sha256=shas[0], view_sha256=shas[0], source="test", status="scored",
                    text=CAPTION, phash=f"{random.getrandbits(64):016x}")  # fmt: skip
        s.add(item)
        s.flush()
        add_media(
            s,
            item.id,
            [
                NewMedium(sha, sha, meta={"image_size": list(size)})
                for sha, size in zip(shas, SIZES, strict=True)
            ],  # fmt: skip
        )
        s.flush()
        record_medium_signals(s, item.id, 1, ocr_text=HOSTILE, nsfw_score=0.1)
        scores = {c: 0.01 for c in policy.ids} | {"drugs": 0.93}
        s.add(
            Prediction(
                item_id=item.id,
                model_version="demo-v1",
                policy_version=policy.version,
                scores=scores,
                flagged=policy.flagged(scores),
                signals={"evidence_regions": regions},
            )
        )
        return item.id


def _region(position: int, box: list) -> dict:
    return {"position": position, "category": "drugs", "box": box,
            "image_size": list(SIZES[position]), "source": "model", "why": "grounding"}  # fmt: skip


def _rect(item_index: int | None, x: float, y: float, w: float, h: float, **outer: object) -> dict:
    """A rectangle as Label Studio's labeling UI sends it (percent of image `item_index`)."""
    out = {"id": outer.pop("id", f"drawn{item_index}"), "from_name": "regions",
           "to_name": "image", "type": "rectanglelabels", "image_rotation": 0,
           "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                     "rectanglelabels": ["drugs"]}, **outer}  # fmt: skip
    if item_index is not None:
        out["item_index"] = item_index
    return out


def _ls_regions(engine: Engine, item_id: int) -> SimpleNamespace:
    with unit_of_work(engine) as s:
        (d,) = s.scalars(
            select(Decision).where(Decision.item_id == item_id, Decision.source == "label_studio")
        )
        return SimpleNamespace(regions=d.meta["regions"], dropped=d.meta.get("regions_dropped"))


def _ls_decided(engine: Engine, item_id: int) -> bool:
    with unit_of_work(engine) as s:
        return (
            s.scalar(
                select(Decision.id).where(
                    Decision.item_id == item_id, Decision.source == "label_studio"
                )
            )
            is not None
        )


def _tasks(client: LabelStudioClient, project_id: int) -> dict[int, dict]:
    return {
        t["data"]["warden_item_id"]: t for t in client.iter_tasks(project_id, with_annotations=True)
    }


def _rects(task: dict) -> list[dict]:
    return [r for r in task["predictions"][0]["result"] if r["type"] == "rectanglelabels"]


def _app(settings: Settings, engine: Engine):  # -> FastAPI
    from app.context import AppContext
    from app.server import create_app

    return create_app(settings, AppContext.create(settings, engine))


def test_a_post_goes_out_with_every_image_and_a_box_on_image_3_comes_back_at_position_2(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
    webhook_server: WebhookServer,
) -> None:
    state = setup(ls_settings, client=ls_client, policy=policy, webhook_url=webhook_server.url)
    assert state.all_media
    project = ls_client.get_project(state.project_id)
    assert project is not None and shows_all_media(project["label_config"])
    assert "HyperText" not in project["label_config"]

    post = _make_post(
        ls_settings, engine, policy, [_region(1, [16, 8, 48, 24]), _region(0, [0, 0, 16, 16])]
    )
    (single,) = make_items([{"drugs": 0.91}])
    report = push(ls_settings, engine, budget=10, client=ls_client, policy=policy)
    assert report.delivered is not None and report.delivered.done == 1
    tasks = _tasks(ls_client, state.project_id)

    # Every image as a signed URL that the app's image route serves: image k's own pixels.
    data = tasks[post]["data"]
    assert len(data["images"]) == 3 and data["image"] == data["images"][0]
    app = TestClient(_app(ls_settings, engine))
    for k, url in enumerate(data["images"]):
        parts = urlsplit(url)
        r = app.get(f"{parts.path}?{parts.query}")
        assert r.status_code == 200, (k, r.text)
        assert Image.open(io.BytesIO(r.content)).size == SIZES[k]
    tampered = urlsplit(data["images"][2].replace("&m=2", "&m=1"))
    assert app.get(f"{tampered.path}?{tampered.query}").status_code == 403
    # Which image is which, and its OCR text, as plain data for a Text tag.
    assert data["media"].splitlines() == [
        "Image 1 of 3",
        f"Image 2 of 3. Text in it: {HOSTILE}",
        "Image 3 of 3",
    ]

    # The box on image 2 is on image index 1, in percent of image 2 (64 x 32).
    on_two, on_cover = sorted(_rects(tasks[post]), key=lambda r: -r["item_index"])
    assert on_two["item_index"] == 1 and on_cover["item_index"] == 0
    assert (on_two["original_width"], on_two["original_height"]) == (64, 32)
    got = [on_two["value"][k] for k in ("x", "y", "width", "height")]
    assert got == pytest.approx([25.0, 25.0, 50.0, 50.0])
    # A single image is a list of one.
    assert len(tasks[single]["data"]["images"]) == 1

    # An annotator draws on image 3 (40 x 80): one box saying its size, one leaving it to the
    # stored size, one on an image the post does not have (dropped, counted).
    ls_client.create_annotation(
        tasks[post]["id"],
        choices_result("drugs")
        + [
            _rect(2, 25.0, 50.0, 50.0, 25.0, original_width=40, original_height=80),
            _rect(2, 0.0, 0.0, 10.0, 10.0, id="no-size"),
            _rect(
                3, 10.0, 10.0, 10.0, 10.0, id="no-such-image", original_width=40, original_height=80
            ),
        ],  # fmt: skip
    )
    ls_client.create_annotation(
        tasks[single]["id"], choices_result("drugs") + [_rect(0, 50.0, 50.0, 25.0, 25.0)]
    )
    # The webhook brings both back; the reconcile then finds nothing new.
    wait_for(lambda: _ls_decided(engine, post) and _ls_decided(engine, single))
    r = reconcile(ls_settings, engine, ls_client, policy=policy)
    assert r.recorded == 0 and r.unchanged == 2
    back = _ls_regions(engine, post)
    assert [(g["position"], g["box"], g["image_size"]) for g in back.regions] == [
        (2, [10.0, 40.0, 30.0, 60.0], [40, 80]),
        (2, [0.0, 0.0, 4.0, 8.0], [40, 80]),
    ]
    assert back.dropped == 1
    (one,) = _ls_regions(engine, single).regions
    assert one["position"] == 0 and one["box"] == [16.0, 16.0, 24.0, 24.0]


def test_a_project_holding_one_image_tasks_keeps_showing_the_cover(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
    cli_env: CliRunner,
) -> None:
    # A project set up before image lists, as earlier Warden versions left it: its config,
    # a state file without `all_media`, and a one-image task already in it.
    old = ls_client.create_project(
        title="Warden: before image lists", label_config=label_config(policy, all_media=False)
    )
    state = ProjectState(url=ls_client.url, project_id=int(old["id"]), policy_version="old")
    raw = {k: v for k, v in asdict(state).items() if k != "all_media"}
    save_state(ls_settings, ProjectState(**raw))
    (first,) = make_items([{"weapons": 0.9}])
    push(ls_settings, engine, budget=5, image_mode="data", client=ls_client, policy=policy)

    out = cli_env.invoke(app, ["setup"])
    assert out.exit_code == 0, out.output
    assert "cover image only" in out.output and "set up a new project" in out.output
    loaded = load_state(ls_settings)
    assert loaded is not None and loaded.project_id == state.project_id
    assert not loaded.all_media
    project = ls_client.get_project(state.project_id)
    assert project is not None and not shows_all_media(project["label_config"])
    assert 'value="$image"' in project["label_config"]

    post = _make_post(
        ls_settings, engine, policy, [_region(1, [16, 8, 48, 24]), _region(0, [0, 0, 16, 16])]
    )
    push(ls_settings, engine, budget=5, image_mode="data", client=ls_client, policy=policy)
    tasks = _tasks(ls_client, state.project_id)
    assert set(tasks) == {first, post}
    assert "images" not in tasks[post]["data"] and tasks[post]["data"]["image"]
    (cover,) = _rects(tasks[post])  # the cover's box only, with no item_index
    assert "item_index" not in cover
    assert (cover["original_width"], cover["original_height"]) == SIZES[0]
    ls_client.create_annotation(
        tasks[post]["id"], choices_result("drugs") + [_rect(None, 50.0, 50.0, 25.0, 25.0)]
    )
    reconcile(ls_settings, engine, ls_client, policy=policy)
    (back,) = _ls_regions(engine, post).regions
    assert back["position"] == 0 and back["box"] == [16.0, 16.0, 24.0, 24.0]

    # A project nobody pushed to yet moves to the image list on the next setup.
    fresh = ls_settings.model_copy(update={"data_dir": ls_settings.data_dir / "other"})
    empty = ls_client.create_project(
        title="Warden: empty old", label_config=label_config(policy, all_media=False)
    )
    save_state(fresh, ProjectState(url=ls_client.url, project_id=int(empty["id"]),
                                   policy_version="old"))  # fmt: skip
    assert setup(fresh, client=ls_client, policy=policy).all_media
    cfg = (ls_client.get_project(int(empty["id"])) or {})["label_config"]
    assert shows_all_media(cfg)


def test_media_text_names_frames_with_their_time_and_cuts_long_ocr() -> None:
    from storage.media import Medium
    from training.labelstudio.sync import MEDIA_OCR_CHARS, media_text

    frames = [
        Medium(1, 0, "a", None, kind="frame", timestamp_s=0.0, ocr_text="<b>hi</b>\n there"),
        Medium(1, 1, "b", None, kind="frame", timestamp_s=1.54, ocr_text="x" * 400),
        Medium(1, 2, "c", None, kind="frame"),
    ]
    first, second, third = media_text(frames).splitlines()
    assert first == "Frame 1 of 3, at 0.0 s. Text in it: <b>hi</b> there"
    assert second == f"Frame 2 of 3, at 1.5 s. Text in it: {'x' * MEDIA_OCR_CHARS}…"
    assert third == "Frame 3 of 3"


def _pixel(page: object, fx: float, fy: float) -> tuple[int, int, int]:
    """The screen colour at (fx, fy) of the shown image (fractions of its width, height)."""
    img = page.locator(".lsf-image img[alt=image]")  # type: ignore[attr-defined]
    box = img.bounding_box()
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")  # type: ignore[attr-defined]
    return shot.getpixel((int(box["x"] + fx * box["width"]), int(box["y"] + fy * box["height"])))


def _near(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) < 30


@pytest.mark.browser
def test_the_annotator_pages_through_the_images_and_sees_the_box_on_image_2(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    ls_server: LabelStudioServer,
    policy: Policy,
    chromium: object,
) -> None:
    state = setup(ls_settings, client=ls_client, policy=policy)
    post = _make_post(
        ls_settings, engine, policy, [_region(1, [16, 8, 48, 24]), _region(0, [0, 0, 8, 8])]
    )
    push(ls_settings, engine, budget=5, image_mode="data", client=ls_client, policy=policy)
    task_id = _tasks(ls_client, state.project_id)[post]["id"]

    context = chromium.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(30_000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(f"{ls_server.url}/user/login")
        page.fill("input[name=email]", ADMIN_EMAIL)
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/user/login" not in url)
        page.goto(f"{ls_server.url}/projects/{state.project_id}/data?tab=0&task={task_id}")
        indicator = page.locator(".lsf-pagination__page-indicator")
        indicator.filter(has_text="1 of 3").wait_for()
        page.locator(".lsf-image img[alt=image]").wait_for()
        page.wait_for_timeout(500)
        # The cover, with no box in its middle; the posted and OCR text shown as text.
        assert _near(_pixel(page, 0.5, 0.5), COLOURS[0])
        page.get_by_text(f"Image 2 of 3. Text in it: {HOSTILE}", exact=True).wait_for()
        page.get_by_text(CAPTION, exact=True).first.wait_for()
        next_image = ".lsf-pagination__btn_arrow-right:not(.lsf-pagination__btn_arrow-right-double)"
        page.click(next_image)
        indicator.filter(has_text="2 of 3").wait_for()
        page.wait_for_timeout(500)
        # Image 2 with the model's box over its middle, its corner clear.
        assert _near(_pixel(page, 0.05, 0.1), COLOURS[1])
        assert not _near(_pixel(page, 0.5, 0.5), COLOURS[1])
        page.click(next_image)
        indicator.filter(has_text="3 of 3").wait_for()
        page.wait_for_timeout(500)
        assert _near(_pixel(page, 0.5, 0.5), COLOURS[2])
        assert dialogs == []  # nothing in the content text ran
    finally:
        context.close()
