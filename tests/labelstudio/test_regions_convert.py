"""Box conversions between Label Studio's percent rectangles and image pixels, without a
server: clamping, rotation, malformed rectangles, and which stored boxes go out."""

from __future__ import annotations

import math

import pytest

from storage.policy import Policy
from training.labelstudio.project import config_values, label_config, shows_all_media
from training.labelstudio.regions import clamp_box, from_ls_result, to_ls_results

ALLOWED = {"drugs", "weapons"}


def _result(value: dict, **outer: object) -> dict:
    return {"id": "r1", "from_name": "regions", "to_name": "image", "type": "rectanglelabels",
            "value": value, **outer}  # fmt: skip


def test_percent_to_pixels_round_trip() -> None:
    box = {"position": 0, "category": "drugs", "box": [10.0, 20.0, 110.0, 70.0],
           "image_size": [200, 100], "source": "model", "why": "grounding"}  # fmt: skip
    (out,) = to_ls_results([box, {**box, "position": 1}], from_name="regions", to_name="image")
    assert out["value"] | {"rectanglelabels": None} == {
        "x": 5.0, "y": 20.0, "width": 50.0, "height": 50.0, "rotation": 0,
        "rectanglelabels": None,
    }  # fmt: skip
    (back,) = from_ls_result(out, None, ALLOWED) or []
    assert back["box"] == [10.0, 20.0, 110.0, 70.0] and back["image_size"] == [200, 100]
    assert back["category"] == "drugs" and back["ls_id"] == "wr0"


def test_size_comes_from_the_result_else_the_fallback() -> None:
    value = {"x": 50, "y": 50, "width": 10, "height": 10, "rectanglelabels": ["weapons"]}
    assert from_ls_result(_result(value), None, ALLOWED) is None  # no size to convert with
    (a,) = from_ls_result(_result(value), (400, 200), ALLOWED) or []
    assert a["box"] == [200.0, 100.0, 240.0, 120.0]
    (b,) = from_ls_result(_result(value, original_width=100, original_height=100),
                          (400, 200), ALLOWED) or []  # fmt: skip
    assert b["box"] == [50.0, 50.0, 60.0, 60.0] and b["image_size"] == [100, 100]


def test_rotated_rectangle_becomes_its_bounding_box() -> None:
    value = {"x": 50, "y": 10, "width": 20, "height": 10, "rotation": 90,
             "rectanglelabels": ["drugs"]}  # fmt: skip
    (r,) = from_ls_result(_result(value), (100, 100), ALLOWED) or []
    # About the top-left corner (50, 10), clockwise: x spans 40..50, y 10..30.
    assert r["box"] == pytest.approx([40.0, 10.0, 50.0, 30.0])


@pytest.mark.parametrize(
    "value",
    [
        {"x": 1, "y": 1, "width": 0, "height": 5, "rectanglelabels": ["drugs"]},
        {"x": 1, "y": 1, "width": -3, "height": 5, "rectanglelabels": ["drugs"]},
        {"x": "a", "y": 1, "width": 3, "height": 5, "rectanglelabels": ["drugs"]},
        {"x": math.nan, "y": 1, "width": 3, "height": 5, "rectanglelabels": ["drugs"]},
        {"x": 1, "y": 1, "width": math.inf, "height": 5, "rectanglelabels": ["drugs"]},
        {"y": 1, "width": 3, "height": 5, "rectanglelabels": ["drugs"]},
        {"x": 1, "y": 1, "width": 3, "height": 5, "rectanglelabels": []},
        {"x": 1, "y": 1, "width": 3, "height": 5, "rectanglelabels": ["child_safety"]},
        {"x": 1, "y": 1, "width": 3, "height": 5, "rectanglelabels": ["drugs", "bogus"]},
        {"x": 1, "y": 1, "width": 3, "height": 5, "rectanglelabels": "drugs"},
        {"x": 120, "y": 1, "width": 3, "height": 5, "rectanglelabels": ["drugs"]},
        {"x": True, "y": 1, "width": 3, "height": 5, "rectanglelabels": ["drugs"]},
    ],
)
def test_malformed_rectangles_are_refused(value: dict) -> None:
    assert from_ls_result(_result(value), (100, 100), ALLOWED) is None


def test_malformed_shapes_are_refused() -> None:
    assert from_ls_result({"value": None}, (10, 10), ALLOWED) is None
    assert from_ls_result(_result({"x": 1}, original_width=0, original_height=5), None,
                          ALLOWED) is None  # fmt: skip


def test_clamp_box() -> None:
    assert clamp_box([-5, -5, 50, 50], (40, 30)) == [0.0, 0.0, 40.0, 30.0]
    assert clamp_box([30, 20, 10, 5], (40, 30)) == [10.0, 5.0, 30.0, 20.0]  # corners swapped
    assert clamp_box([50, 50, 60, 60], (40, 30)) is None
    assert clamp_box([1, 2, 3], (40, 30)) is None
    assert clamp_box([1, 2, 3, True], (40, 30)) is None


def test_label_config_regions_by_default_and_retired_labels(policy: Policy) -> None:
    xml = label_config(policy)
    exported = [c.id for c in policy.categories if not c.restricted]
    assert config_values(xml) == {"categories": [*exported, "safe"], "regions": exported}
    kept = label_config(
        policy,
        regions=False,
        keep={"categories": ["old_cat", "child_safety"], "regions": ["<x&y>"]},
    )
    values = config_values(kept)
    assert values["categories"] == [*exported, "old_cat", "safe"]  # restricted never kept
    assert "regions" not in values
    assert config_values("<View><broken") == {}


def test_boxes_on_every_medium_go_out_at_their_item_index() -> None:
    box = {"position": 0, "category": "drugs", "box": [0.0, 0.0, 10.0, 10.0],
           "image_size": [20, 20], "source": "model", "why": "grounding"}  # fmt: skip
    boxes = [box, {**box, "position": 2, "image_size": [40, 10]}, {**box, "position": 3}]
    cover, third = to_ls_results(boxes, from_name="regions", to_name="image", media_count=3)
    assert (cover["item_index"], third["item_index"]) == (0, 2)  # position 3: no such image
    assert third["value"]["width"] == 25.0 and third["value"]["height"] == 100.0
    (only,) = to_ls_results(boxes, from_name="regions", to_name="image")
    assert "item_index" not in only  # a cover-only task


def test_item_index_picks_the_medium_and_its_size() -> None:
    value = {"x": 50, "y": 50, "width": 10, "height": 10, "rectanglelabels": ["drugs"]}
    sizes = [(100, 100), None, (400, 200)]
    (r,) = from_ls_result(_result(value, item_index=2), None, ALLOWED, sizes=sizes) or []
    assert r["position"] == 2 and r["box"] == [200.0, 100.0, 240.0, 120.0]
    (c,) = from_ls_result(_result(value), None, ALLOWED, sizes=sizes) or []
    assert c["position"] == 0 and c["image_size"] == [100, 100]
    for bad in (3, -1, "1", True, 1.0):
        assert from_ls_result(_result(value, item_index=bad), None, ALLOWED, sizes=sizes) is None
    assert from_ls_result(_result(value, item_index=1), None, ALLOWED, sizes=sizes) is None
    # Without the item's media, only the cover is known.
    assert from_ls_result(_result(value, item_index=1), (100, 100), ALLOWED) is None


def test_label_config_shows_every_medium_or_the_cover(policy: Policy) -> None:
    listed, cover = label_config(policy), label_config(policy, all_media=False)
    assert shows_all_media(listed) and not shows_all_media(cover)
    assert 'valueList="$images"' in listed and 'value="$media"' in listed
    assert 'value="$image"' in cover and "$images" not in cover
    assert "HyperText" not in listed  # content text stays inert
    assert config_values(listed) == config_values(cover)
    assert not shows_all_media("<View><broken") and not shows_all_media(None)
