"""Evidence boxes through a real Label Studio: an item's OCR evidence box goes out as a
RectangleLabels pre-annotation, an annotator moves it, and the webhook and the reconcile bring
the corrected box back into the ledger in image pixels (malformed rectangles dropped and
counted); `setup` updates a project whose annotations use what a new policy drops."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, select, update

from storage.db import unit_of_work
from storage.models import Decision, Item, ItemMedium, Prediction
from storage.policy import Policy
from storage.settings import Settings
from tests.labelstudio.conftest import MakeItems, WebhookServer, choices_result, wait_for
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import config_values, setup
from training.labelstudio.sync import push, reconcile

pytestmark = pytest.mark.labelstudio


def _ls_decisions(engine: Engine, item_id: int) -> list[SimpleNamespace]:
    """The item's Label Studio decision rows, oldest first (with their meta)."""
    with unit_of_work(engine) as s:
        rows = s.scalars(
            select(Decision)
            .where(Decision.item_id == item_id, Decision.source == "label_studio")
            .order_by(Decision.id)
        )
        return [
            SimpleNamespace(
                id=d.id, categories=d.categories, supersedes_id=d.supersedes_id, meta=d.meta
            )
            for d in rows
        ]


def _store_regions(engine: Engine, item_id: int, regions: list[dict]) -> None:
    """Give the item's prediction these evidence regions, as model.regions stores them (boxes
    in the 32x32 view's pixels)."""
    with unit_of_work(engine) as s:
        s.execute(
            update(Prediction)
            .where(Prediction.item_id == item_id)
            .values(signals={"evidence_regions": regions})
        )


def _region(source: str, box: list, **extra: object) -> dict:
    return {"position": 0, "category": "drugs", "box": box, "image_size": [32, 32],
            "source": source, **extra}  # fmt: skip


def _rect(x: float, y: float, w: float, h: float, label: str, **extra: object) -> dict:
    """A rectangle as Label Studio's labeling UI sends it (percent of the image)."""
    return {
        "id": extra.pop("id", "moved"),
        "from_name": "regions",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 32,
        "original_height": 32,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                  "rectanglelabels": [label], **extra},
    }  # fmt: skip


def test_evidence_box_goes_out_and_the_corrected_box_comes_back_in_pixels(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
    webhook_server: WebhookServer,
) -> None:
    state = setup(ls_settings, webhook_url=webhook_server.url, client=ls_client)
    project = ls_client.get_project(state.project_id)
    assert project is not None and state.regions
    values = config_values(project["label_config"])
    assert values["regions"] == [c.id for c in policy.categories if not c.restricted]
    assert "safe" in values["categories"]  # the category choices are still there

    drugs, legacy = make_items([{"drugs": 0.93}, {"scam_fraud": 0.88}])
    # What model.regions stores: the OCR line that drove "drugs", and a malformed entry.
    _store_regions(
        engine,
        drugs,
        [
            _region("ocr", [4, 8, 20, 16], why="attribution", text="<b>buy pills</b>", weight=0.4),
            _region("ocr", [1, 2, "x", 4]),
        ],
    )
    with unit_of_work(engine) as s:
        # A prediction from before regions: the cover's stored OCR line boxes are offered.
        item = s.get(Item, legacy)
        s.add(
            ItemMedium(
                item_id=legacy,
                position=0,
                blob_sha256=item.blob_sha256,
                view_sha256=item.view_sha256,
                ocr_text="CALL NOW",
                ocr_boxes=[{"text": "CALL NOW", "box": [0, 24, 40, 30], "score": 0.9}],
                meta={"image_size": [32, 32]},
            )
        )

    report = push(ls_settings, engine, budget=10, image_mode="data", client=ls_client)
    assert report.delivered is not None and report.delivered.done == 1
    tasks = {
        t["data"]["warden_item_id"]: t
        for t in ls_client.iter_tasks(state.project_id, with_annotations=True)
    }
    results = tasks[drugs]["predictions"][0]["result"]
    assert results[0]["value"]["choices"] == ["drugs"]
    (rect,) = [r for r in results if r["type"] == "rectanglelabels"]  # the malformed one left out
    assert rect["from_name"] == "regions" and rect["to_name"] == "image"
    assert (rect["original_width"], rect["original_height"]) == (32, 32)
    assert rect["value"]["rectanglelabels"] == ["drugs"]
    got = [rect["value"][k] for k in ("x", "y", "width", "height")]
    assert got == pytest.approx([12.5, 25.0, 50.0, 25.0])
    (old_rect,) = [
        r for r in tasks[legacy]["predictions"][0]["result"] if r["type"] == "rectanglelabels"
    ]
    assert old_rect["value"]["rectanglelabels"] == ["scam_fraud"]
    # Clamped to the 32 px image: x1 40 -> 32.
    assert old_rect["value"]["width"] == pytest.approx(100.0)
    assert old_rect["value"]["y"] == pytest.approx(75.0)

    # The annotator moves the box (and draws two malformed ones), submitted through the API.
    annotator = ls_client.create_user(f"boxes-{state.project_id}@warden.test", "annotator-pass-1")
    ann_id = ls_client.create_annotation(
        tasks[drugs]["id"],
        choices_result("drugs")
        + [
            _rect(25.0, 50.0, 50.0, 25.0, "drugs", id=rect["id"]),
            _rect(90.0, 90.0, 30.0, 30.0, "drugs", id="over-the-edge"),
            _rect(10.0, 10.0, 0.0, 20.0, "drugs", id="flat"),
            _rect(10.0, 10.0, 20.0, 20.0, "child_safety", id="restricted"),
        ],
        completed_by=annotator,
    )
    wait_for(lambda: _ls_decisions(engine, drugs))
    (d,) = _ls_decisions(engine, drugs)
    assert d.categories == ["drugs"]
    regions = d.meta["regions"]
    assert [r["box"] for r in regions] == [[8.0, 16.0, 24.0, 24.0], [28.8, 28.8, 32.0, 32.0]]
    assert all(r["category"] == "drugs" and r["image_size"] == [32, 32] for r in regions)
    assert regions[0]["source"] == "label_studio" and regions[0]["ls_id"] == rect["id"]
    assert d.meta["regions_dropped"] == 2

    # The reconcile sees the same annotation: nothing new, append-only.
    r = reconcile(ls_settings, engine, ls_client)
    assert r.recorded == 0 and r.unchanged == 1
    # A moved box is a new version: a new decision superseding the first, the old row kept.
    ls_client.update_annotation(
        ann_id, choices_result("drugs") + [_rect(0.0, 0.0, 25.0, 12.5, "drugs")]
    )
    wait_for(lambda: len(_ls_decisions(engine, drugs)) == 2)
    first, second = _ls_decisions(engine, drugs)
    assert first.meta["regions"] == regions
    assert second.supersedes_id == first.id
    assert [r["box"] for r in second.meta["regions"]] == [[0.0, 0.0, 8.0, 4.0]]
    assert "regions_dropped" not in second.meta


def test_setup_keeps_what_existing_annotations_use(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
) -> None:
    state = setup(ls_settings, client=ls_client, policy=policy)
    (item,) = make_items([{"weapons": 0.9}])
    push(ls_settings, engine, budget=5, image_mode="data", client=ls_client, policy=policy)
    (task,) = list(ls_client.iter_tasks(state.project_id))
    ls_client.create_annotation(
        task["id"], choices_result("weapons") + [_rect(10, 10, 20, 20, "weapons")]
    )
    # A new policy without "weapons", set up without regions: Label Studio refuses a config
    # that drops what the annotation uses, so setup keeps the retired label and the regions.
    narrower = replace(
        policy,
        categories=tuple(c for c in policy.categories if c.id != "weapons"),
        version=policy.version + "-next",
    )
    again = setup(ls_settings, client=ls_client, policy=narrower, regions=False)
    assert again.project_id == state.project_id and again.regions
    project = ls_client.get_project(state.project_id)
    assert project is not None
    values = config_values(project["label_config"])
    assert "weapons" in values["categories"] and "weapons" in values["regions"]
    assert "retired" in project["label_config"]
    assert "child_safety" not in project["label_config"]
    with unit_of_work(engine) as s:
        assert s.scalar(select(Item.id).where(Item.id == item)) == item

    # A project nobody annotated in yet takes the narrower config as it is.
    fresh = ls_settings.model_copy(update={"data_dir": ls_settings.data_dir / "other"})
    other = setup(fresh, client=ls_client, policy=policy)
    setup(fresh, client=ls_client, policy=narrower, regions=False)
    cfg = (ls_client.get_project(other.project_id) or {})["label_config"]
    assert "weapons" not in config_values(cfg)["categories"]
    assert "regions" not in config_values(cfg)


def test_a_project_without_regions_gets_no_boxes(
    ls_settings: Settings,
    engine: Engine,
    ls_client: LabelStudioClient,
    make_items: MakeItems,
    policy: Policy,
) -> None:
    # Set up elsewhere without regions (this machine has no state file): push asks the
    # project's config rather than assuming, and the import succeeds without rectangles.
    state = setup(ls_settings, client=ls_client, policy=policy, regions=False)
    (ls_settings.data_dir / "labelstudio.json").unlink()
    shared = ls_settings.model_copy(
        update={
            "labelstudio": ls_settings.labelstudio.model_copy(
                update={"project_id": state.project_id}
            )
        }
    )
    (item,) = make_items([{"drugs": 0.93}])
    _store_regions(engine, item, [_region("model", [4, 8, 20, 16], why="grounding")])
    report = push(shared, engine, budget=5, image_mode="data", client=ls_client, policy=policy)
    assert report.delivered is not None and report.delivered.done == 1
    (task,) = list(ls_client.iter_tasks(state.project_id, with_annotations=True))
    assert [r["type"] for r in task["predictions"][0]["result"]] == ["choices"]
