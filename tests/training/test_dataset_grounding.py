"""Grounding rows in `warden dataset build`: decisions with boxes (as Label Studio pulls
store them) become SFT rows that answer in the base model's own box format; superseded,
retracted, off-label and malformed boxes give none; the card counts them.

Run: WARDEN_TEST_NO_PG=1 .venv/bin/python -m pytest tests/training/test_dataset_grounding.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.errors import WardenError
from storage.settings import Settings
from tests.training.test_dataset import POLICY, _build, _ingest, _item_ids, _predict, training_cli
from training.dataset import load_trl_split, read_card
from training.grounding import answer_text, format_for_base


def _boxes(category: str, *boxes: list[float], size: int = 96) -> dict:
    return {
        "regions": [
            {"position": 0, "category": category, "box": list(b), "image_size": [size, size],
             "source": "label_studio", "ls_id": f"r{k}"}
            for k, b in enumerate(boxes)
        ]
    }  # fmt: skip


def test_decisions_with_boxes_become_grounding_rows(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _ingest(settings, tmp_path / "in", 24, seed=11)
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as s:
        ids = _item_ids(s)
        for name, rec in rows.items():
            _predict(s, ids[name], rec["labels"], rec["rendered_text"])
        harmful = sorted(n for n in rows if rows[n]["labels"])
        safe = sorted(n for n in rows if not rows[n]["labels"])
        assert len(harmful) >= 5 and safe
        boxed, moved, deleted, off_label, broken = harmful[:5]

        def ls(name: str, meta: dict, n: int, supersedes: int | str = "auto") -> int:
            return record_decision(
                s,
                item_id=ids[name],
                categories=list(rows[name]["labels"]),
                source="label_studio",
                reviewer="ann@warden.test",
                policy=POLICY,
                external_ref=f"ls:1:{n}:2026-12-0{n}T00:00:00.000000Z",
                supersedes=supersedes,  # type: ignore[arg-type]
                meta=meta,
            ).id

        cat = rows[boxed]["labels"][0]
        ls(boxed, _boxes(cat, [24, 48, 72, 96], [0, 0, 200, 10], [5, 5, 5, 9]), 1)
        # A box moved in a later version of the annotation: only the newest counts.
        first = ls(moved, _boxes(rows[moved]["labels"][0], [0, 0, 48, 48]), 2)
        ls(moved, _boxes(rows[moved]["labels"][0], [48, 48, 96, 96]), 3, supersedes=first)
        # The annotator deleted every box in the newer version: no row from the older one.
        first = ls(deleted, _boxes(rows[deleted]["labels"][0], [0, 0, 48, 48]), 4)
        ls(deleted, {"regions": []}, 5, supersedes=first)
        other = next(
            c.id
            for c in POLICY.categories
            if not c.restricted and c.id not in rows[off_label]["labels"]
        )
        ls(off_label, _boxes(other, [0, 0, 10, 10]), 6)  # not a decided category
        ls(broken, {"regions": [{"category": cat, "box": [1, 2, "x", 4]}, "junk"]}, 7)
    engine.dispose()

    info = _build(
        settings,
        tmp_path / "d1",
        golden_fraction=0.0,
        val_fraction=0.0,
        learn_reading=False,
        benign_share=0.0,
        replay_ratio=0.0,
        balance_cap=1000.0,
        dedup_distance=0,
    )
    out = Path(info.path)
    g = info.counts["grounding"]
    assert g == {"format": "internvl", "train": 2, "validation": 0, "items": 2}
    assert read_card(out)["counts"]["grounding"] == g
    readme = (out / "README.md").read_text()
    assert "Grounding rows" in readme and "data/grounding-train.parquet" in readme

    table = pq.read_table(out / "data" / "grounding-train.parquet").to_pylist()
    got = {
        r["category"] + ":" + r["key"]: json.loads(r["completion"])[0]["content"][0]["text"]
        for r in table
    }
    # The boxes as stored travel with each row (pixels and the image's size).
    stored = {r["category"]: json.loads(r["boxes"]) for r in table if r["category"] == cat}
    assert stored[cat] == [
        {"category": cat, "box": [24.0, 48.0, 72.0, 96.0], "image_size": [96, 96]},
        {"category": cat, "box": [0.0, 0.0, 96.0, 10.0], "image_size": [96, 96]},
    ]
    with unit_of_work(make_engine(settings.database_url)) as s:
        from storage.models import Item

        key = {
            n: (it.view_sha256 or it.blob_sha256)
            for n, i in _item_ids(s).items()
            if (it := s.get(Item, i)) is not None
        }
    # Clamped (x1 200 -> 96) and the flat box dropped; 0-1000 of the 96 px image.
    assert got == {
        f"{cat}:{key[boxed]}": f"<ref>{cat}</ref><box>[[250, 500, 750, 1000], [0, 0, 1000, 104]]"
        "</box>",
        f"{rows[moved]['labels'][0]}:{key[moved]}": f"<ref>{rows[moved]['labels'][0]}</ref>"
        "<box>[[500, 500, 1000, 1000]]</box>",
    }
    # TRL loads them like the SFT rows, with the item's image.
    loaded = load_trl_split(out, "grounding", "train")
    assert len(loaded) == 2 and all(r["images"][0].size == (96, 96) for r in loaded)
    question = loaded[0]["prompt"][1]["content"][-1]["text"]
    assert "bounding box" in question and loaded[0]["category"] in question
    # The SFT rows are untouched: yes/no answers only.
    sft = pq.read_table(out / "data" / "sft-train.parquet").to_pylist()
    assert {json.loads(r["completion"])[0]["content"][0]["text"] for r in sft} == {"Yes", "No"}

    # From the command line, the format picked by a base model's architecture.
    base = tmp_path / "qwen25"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    # Its processor caps images at 3200 pixels: the 96 px image is fed as 56 x 56.
    (base / "preprocessor_config.json").write_text(
        json.dumps({"min_pixels": 3136, "max_pixels": 3200, "patch_size": 14, "merge_size": 2})
    )
    with training_cli(settings, monkeypatch) as invoke:
        args = ["dataset", "build", "--out", str(tmp_path / "d2"), "--no-reading"]
        res = invoke([*args, "--grounding-format", str(base)])
    assert res.exit_code == 0, res.output
    assert "grounding rows (qwen2_5_vl boxes)" in res.stdout
    card = read_card(tmp_path / "d2")
    assert card["counts"]["grounding"]["format"] == "qwen2_5_vl"
    assert card["counts"]["grounding"]["resize"] == {
        "factor": 28, "min_pixels": 3136, "max_pixels": 3200,
    }  # fmt: skip
    texts = [
        json.loads(r["completion"])[0]["content"][0]["text"]
        for split in ("train", "validation")
        for r in pq.read_table(tmp_path / "d2" / "data" / f"grounding-{split}.parquet").to_pylist()
        if "completion" in r
    ]
    assert texts and all(t.startswith('```json\n[{"bbox_2d": [') for t in texts), texts
    coords = [v for t in texts for b in json.loads(t[8:-4]) for v in b["bbox_2d"]]
    assert max(coords) <= 56 and 56 in coords, texts


def test_answer_formats() -> None:
    r = [{"category": "drugs", "box": [24.0, 48.0, 72.0, 96.0], "image_size": [96, 96]}]
    assert (
        answer_text("internvl", "drugs", r) == "<ref>drugs</ref><box>[[250, 500, 750, 1000]]</box>"
    )
    assert answer_text("qwen2_vl", "drugs", r * 2) == (
        "<|object_ref_start|>drugs<|object_ref_end|>"
        + "<|box_start|>(250,500),(750,1000)<|box_end|>" * 2
    )
    # Qwen2.5-VL: pixels of the image as its processor resizes it (96 px -> 84 px, 28 px grid).
    assert answer_text("qwen2_5_vl", "drugs", r) == (
        '```json\n[{"bbox_2d": [21, 42, 63, 84], "label": "drugs"}]\n```'
    )
    small = {"factor": 28, "min_pixels": 3136, "max_pixels": 3200}
    assert '"bbox_2d": [14, 28, 42, 56]' in answer_text("qwen2_5_vl", "drugs", r, small)


def test_format_from_the_base_models_architecture(tmp_path: Path) -> None:
    for model_type, fmt in (("internvl", "internvl"), ("qwen2_vl", "qwen2_vl"),
                            ("qwen2_5_vl", "qwen2_5_vl")):  # fmt: skip
        folder = tmp_path / model_type
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
        assert format_for_base(str(folder)) == fmt
    assert format_for_base("Qwen/Qwen2.5-VL-7B-Instruct") == "qwen2_5_vl"
    assert format_for_base("OpenGVLab/InternVL3_5-2B-HF") == "internvl"
    (tmp_path / "llava").mkdir()
    (tmp_path / "llava" / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(WardenError, match="no known grounding format"):
        format_for_base(str(tmp_path / "llava"))
