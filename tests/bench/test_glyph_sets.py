"""bench/glyph_sets.py: labelled sets in an evasion SynthMod did not write, from Faker text:
one-for-one glyph swaps (the default) and, with --evasion split, letters split by dots, spaces,
zero-width spaces or an inserted symbol, which `model.normalise` reads back."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image

from bench.glyph_sets import SPLIT_WAYS, build_sets, split_words
from model.normalise import normalise_text


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_split_sets_are_rendered_labelled_and_read_back(tmp_path: Path) -> None:
    paths = build_sets(tmp_path / "split", 30, 20, 10, seed=0, evasion="split")
    assert set(paths) == {"corrections", "heldout_split", "heldout_benign"}
    plain = build_sets(tmp_path / "plain", 30, 20, 10, seed=0, evasion="swap")
    corr, held = _rows(paths["corrections"]), _rows(paths["heldout_split"])
    assert len(corr) == 30 and len(held) == 20
    for r in corr[:5]:
        Image.open(paths["corrections"].parent / r["path"]).verify()
    # Same draws as the swap sets (same labels and families), a different writing.
    swapped = _rows(plain["corrections"])
    assert [r["labels"] for r in corr] == [r["labels"] for r in swapped]
    assert sum(any(c in r["rendered_text"] for c in ". \u200b-_*~·") for r in corr) == 30
    # Benign lines nobody corrected stay plain in both.
    assert _rows(paths["heldout_benign"]) == _rows(plain["heldout_benign"])
    assert not (tmp_path / "split" / "swaps.json").exists()


def test_split_words_breaks_long_words_one_way_per_line_and_normalises_back() -> None:
    text = "Cocaine and ecstasy for sale, discreet delivery anywhere in Boston."
    rng = random.Random(3)
    seen = set()
    for _ in range(40):
        out = split_words(text, rng, share=1.0)
        assert out != text
        assert " and " in out and " for " in out and " in " in out  # short words stay whole
        if "\u200b" in out:
            way = "zero-width"
        elif "C.o.c" in out:
            way = "dots"
        elif "C o c" in out:
            way = "spaces"
        else:
            way = "symbol"
            assert sum(c in "-_*~·" for c in out) == 7  # one in each word of 4+ letters
        seen.add(way)
        if way != "symbol":  # letters one by one: normalisation joins every word back
            assert normalise_text(out) == text
    assert seen == set(SPLIT_WAYS)
