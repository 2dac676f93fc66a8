"""The demo checkpoint shipped in assets/model/demo, as `make demo` serves it: small enough for
the repository, deterministic tokenizer, and meaningful scores on a plain image of text read by
RapidOCR (the workbench's whole path: image -> OCR -> prompt -> scorer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.backends import ScoringInput
from model.loading import DEMO_MODEL_DIR, load_backend
from storage.settings import ModelSettings

ROOT = Path(__file__).resolve().parents[2]


def test_checkpoint_fits_the_repository_and_says_how_it_was_made() -> None:
    size = sum(p.stat().st_size for p in DEMO_MODEL_DIR.iterdir())
    assert size <= 50 * 2**20, f"demo checkpoint is {size / 2**20:.1f} MiB (limit 50)"
    card = json.loads((DEMO_MODEL_DIR / "demo_card.json").read_text())
    assert {s["stage"] for s in card["stages"]} == {"pre", "mid"}
    # `warden train demo` with no --recipe rebuilds what ships, and post-training picks the
    # recipe that built it (training.recipes.pick).
    from training.recipes.pick import SHIPPED_DEMO_RECIPE, recipe_for_base

    assert card["recipe"] == SHIPPED_DEMO_RECIPE == recipe_for_base("demo")
    assert card["eval"]["in_distribution"]["average_recall"] > 0.9
    # The card says how often it flags harmless text it never saw, as bench/demo_benign.py
    # measured this checkpoint (issue 18): the figures are the results file's, not typed in.
    unseen = card["unseen_text"]
    measured = json.loads((ROOT / unseen["results"]).read_text())["old"]
    assert measured["model"].endswith("assets/model/demo")
    for key in ("benign_flagged", "benign_n", "harmful_caught", "harmful_n"):
        assert unseen[key] == measured[key]
    tok = json.loads((DEMO_MODEL_DIR / "tokenizer.json").read_text())
    assert tok["model"]["dropout"] is None  # BPE-dropout is for training only


def _card(text: str):
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (640, 240), "white")
    draw = ImageDraw.Draw(img)
    draw.text((24, 90), text, font=ImageFont.load_default(size=36), fill="black")
    return img


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Buy cocaine online, fast shipping", "drugs"),
        ("Send 1 BTC, get 2 BTC back", "scam_fraud"),
        ("Lovely walk in the park today", None),
    ],
)
def test_clear_text_image_scores_its_category(policy, text: str, category: str | None) -> None:
    from model.signals import read_text

    image = _card(text)
    ocr = read_text(image)
    assert ocr, "RapidOCR read nothing from a plain black-on-white line"
    backend = load_backend(ModelSettings(name="demo", device="cpu", quant="none"))
    [verdict] = backend.score([ScoringInput(image=image, ocr_text=ocr)], policy)
    if category is None:
        assert verdict.flagged == [], verdict.scores
    else:
        assert category in verdict.flagged, verdict.scores
        assert max(verdict.scores, key=verdict.scores.get) == category
