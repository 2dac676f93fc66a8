"""Grounding boxes in the strict JSON verdict: each family's convention mapped to the view's
pixels (InternVL / Qwen2-VL 0-1000; Qwen2.5-VL pixels of its processor's resize), hostile and
malformed entries dropped and counted, a non-list "boxes" unparsable; a recorded verdict string
through parse, the ledger and the card's overlay; the tiny real InternVL is asked for boxes.

Run: .venv/bin/pytest tests/model/test_grounding.py -q
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

from app.evidence_overlay import frame_for
from model.backends import ScoringInput
from model.grounding import convention_for, grounding_question, model_input_size, parse_boxes
from model.rationale import parse_rationale
from storage.domain import Verdict
from storage.policy import Policy

HOSTILE = "<img src=x onerror=alert(1)>"


def test_norm1000_boxes_map_to_the_view_and_clamp(policy: Policy) -> None:
    regions, dropped = parse_boxes(
        [
            {"category": "drugs", "box": [250, 500, 750, 1000]},
            {"category": "weapons", "box": [900, -50, 1200, 100], "image": 2},
        ],
        policy,
        [(400, 200), (100, 100)],
        "norm1000",
    )
    assert dropped == 0
    assert regions == [
        {
            "position": 0,
            "category": "drugs",
            "box": [100.0, 100.0, 300.0, 200.0],
            "image_size": [400, 200],
            "source": "model",
            "why": "grounding",
        },
        {
            "position": 1,
            "category": "weapons",
            "box": [90.0, 0.0, 100.0, 10.0],
            "image_size": [100, 100],
            "source": "model",
            "why": "grounding",
        },
    ]


def test_qwen25_pixels_are_of_the_resized_input(policy: Policy) -> None:
    from transformers import Qwen2VLImageProcessor

    processor = SimpleNamespace(image_processor=Qwen2VLImageProcessor())
    # 400 x 200 -> sides rounded to multiples of 28: 392 x 196 as the model sees it.
    assert model_input_size(processor, (400, 200)) == (392, 196)
    regions, dropped = parse_boxes(
        [{"category": "drugs", "box": [0, 98, 196, 196]}],
        policy,
        [Image.new("RGB", (400, 200))],
        "pixels",
        processor,
    )
    assert dropped == 0 and regions[0]["box"] == [0.0, 100.0, 200.0, 200.0]


def test_hostile_and_malformed_boxes_are_dropped_and_counted(policy: Policy) -> None:
    entries = [
        {"category": "drugs", "box": [10, 10, 500, 500]},  # the one good box
        {"category": HOSTILE, "box": [10, 10, 500, 500]},
        {"category": "drugs", "box": [10, 10, 500]},
        {"category": "drugs", "box": ["10", 10, 500, 500]},
        {"category": "drugs", "box": [10, 10, True, 500]},
        {"category": "drugs", "box": [500, 10, 10, 500]},  # inverted
        {"category": "drugs", "box": [1100, 1100, 1200, 1200]},  # off the image
        {"category": "drugs", "box": [10, 10, 500, 500], "image": 2},  # one image only
        {"category": "drugs", "box": [10, 10, 500, 500], "image": True},
        {"category": "drugs", "box": [10, 10, 500, 500], "onload": HOSTILE},
        {"category": "drugs", "box": {"x": 1}},
        HOSTILE,
        None,
        [10, 10, 500, 500],
    ]
    regions, dropped = parse_boxes(entries, policy, [(200, 100)], "norm1000")
    assert [r["box"] for r in regions] == [[2.0, 1.0, 100.0, 50.0]]
    assert dropped == len(entries) - 1
    many = [{"category": "drugs", "box": [0, 0, 10, 10]}] * 40
    kept, over = parse_boxes(many, policy, [(200, 100)], "norm1000")
    assert (len(kept), over) == (32, 8)


def test_the_reply_stays_strict_around_boxes(policy: Policy) -> None:
    ok = '{"categories": ["drugs"], "rationale": "sells drugs", "boxes": []}'
    assert parse_rationale(ok, policy).boxes == []
    assert parse_rationale('{"categories": [], "rationale": "fine"}', policy).boxes is None
    for bad in (
        '{"categories": ["drugs"], "rationale": "x", "boxes": "everywhere"}',
        '{"categories": ["drugs"], "rationale": "x", "boxes": {"box": [1, 2, 3, 4]}}',
        '{"categories": ["drugs"], "rationale": "x", "boxes": [], "extra": 1}',
        '{"categories": ["drugs"], "rationale": "x", "boxes": [' * 5000,
    ):
        assert parse_rationale(bad, policy) is None, bad
    # NaN is JSON to Python's parser: a box holding one is dropped, not the reply.
    nan = '{"categories": ["drugs"], "rationale": "x", "boxes": [{"category": "drugs", '
    nan += '"box": [NaN, 1, 2, 3]}]}'
    reply = parse_rationale(nan, policy)
    assert reply is not None and parse_boxes(reply.boxes, policy, [(10, 10)], "norm1000") == (
        [],
        1,
    )


def test_grounding_question_by_family() -> None:
    assert grounding_question(None) == ""
    assert "0 to 1000" in grounding_question("norm1000")
    assert "pixels" in grounding_question("pixels") and '"image"' not in grounding_question(
        "pixels"
    )
    assert '"image": <1 to 3>' in grounding_question("norm1000", 3)
    assert convention_for(SimpleNamespace(config=SimpleNamespace(model_type="llava"))) is None
    qwen25 = SimpleNamespace(config=SimpleNamespace(model_type="qwen2_5_vl"))
    assert convention_for(qwen25) == "pixels"


def test_tiny_internvl_is_asked_for_boxes(tiny_internvl: Path, policy: Policy) -> None:
    from model.loading import load_backend
    from storage.settings import ModelSettings

    backend = load_backend(
        ModelSettings(name=str(tiny_internvl), device="cpu", dtype="float32", quant="none")
    )
    assert convention_for(backend.model) == "norm1000"
    item = ScoringInput(image=Image.new("RGB", (64, 48), "white"), ocr_text="BUY NOW")
    [verdict] = backend.score([item], policy, rationale=True)
    # Random weights write no JSON: unparsable, and no region invented.
    assert verdict.parse_ok is False and "evidence_regions" not in verdict.signals


def test_recorded_verdict_goes_to_the_ledger_and_the_card(
    settings, tmp_path: Path, policy: Policy
) -> None:
    from storage.db import make_engine, unit_of_work
    from storage.queue import record_prediction
    from storage.review import build_card
    from tests.model._worker_support import ingest

    recorded = json.dumps(
        {
            "categories": ["drugs"],
            "rationale": "a bag of pills on sale",
            "boxes": [
                {"category": "drugs", "box": [100, 200, 600, 700]},
                {"category": HOSTILE, "box": [0, 0, 10, 10]},
            ],
        }
    )
    reply = parse_rationale(recorded, policy)
    assert reply is not None
    regions, dropped = parse_boxes(reply.boxes, policy, [(320, 240)], "norm1000")
    assert dropped == 1
    verdict = Verdict(
        scores={"drugs": 0.97},
        flagged=["drugs"],
        model_version="recorded",
        latency_ms=1.0,
        policy_version=policy.version,
        rationale=reply.rationale,
        raw_reply=recorded,
        parse_ok=True,
        signals={"evidence_regions": regions, "boxes_dropped": dropped},
    )
    (item_id,) = ingest(settings, tmp_path / "in", 1)  # a 320 x 240 image
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            record_prediction(s, item_id, verdict)
        with unit_of_work(engine) as s:
            card = build_card(s, item_id, policy, blur_nsfw_threshold=0.5)
    finally:
        engine.dispose()
    assert card.regions == regions
    frame = frame_for(card.regions, policy)
    assert frame is not None
    assert "left:10.00%;top:20.00%;width:50.00%;height:50.00%" in frame[1]
    assert "wd-ev-model" in frame[1] and "onerror" not in frame[1]


def test_a_served_model_grounds_by_its_name(policy: Policy) -> None:
    from model.grounding import convention_for_name, grounded_signals
    from model.openai_backend import OpenAIBackend
    from storage.settings import ModelSettings

    assert convention_for_name("Qwen/Qwen2.5-VL-7B-Instruct") == "pixels"
    assert convention_for_name("OpenGVLab/InternVL3_5-2B-HF") == "norm1000"
    assert convention_for_name("Qwen/Qwen2-VL-2B-Instruct") == "norm1000"
    assert convention_for_name("llava-hf/llava-1.5-7b-hf") is None
    settings = ModelSettings(
        backend="openai", openai_base_url="http://127.0.0.1:9/v1",
        openai_model="Qwen/Qwen2.5-VL-7B-Instruct",
    )  # fmt: skip
    backend = OpenAIBackend.from_settings(settings)
    try:
        assert backend.grounding == "pixels"
    finally:
        backend.close()
    assert OpenAIBackend("http://127.0.0.1:9/v1", "tiny").grounding is None
    # A recorded Qwen2.5-VL verdict on a 400 x 200 view (392 x 196 as the model saw it).
    recorded = json.dumps(
        {
            "categories": ["weapons"],
            "rationale": "a rifle",
            "boxes": [{"category": "weapons", "box": [196, 0, 392, 98]}, {"box": "all"}],
        }
    )
    views = [Image.new("RGB", (400, 200))]
    got = grounded_signals(recorded, policy, views, "pixels")
    assert got["boxes_dropped"] == 1
    assert [r["box"] for r in got["evidence_regions"]] == [[200.0, 0.0, 400.0, 100.0]]
    assert grounded_signals("not json", policy, views, "pixels") == {}
