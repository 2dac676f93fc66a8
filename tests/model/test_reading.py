"""A model's reader (model.reading) on the serving path: the demo checkpoint with a reading.json
beside it reads leetspeak OCR text back before the prompt, keeps the raw text in the verdict,
and refuses a malformed reading file with a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from model.backends import ScoringInput
from model.loading import DEMO_MODEL_DIR, load_backend
from model.reading import READING_FILE, Channel, Reader, lexicon_of
from storage.errors import WardenError
from storage.settings import ModelSettings

LEET = {
    "a": {"4": 0.3, "@": 0.3},
    "b": {"8": 0.6},
    "e": {"3": 0.6},
    "g": {"9": 0.6},
    "i": {"1": 0.3, "!": 0.3},
    "l": {"1": 0.3, "|": 0.3},
    "o": {"0": 0.6},
    "s": {"5": 0.3, "$": 0.3},
    "t": {"7": 0.6},
}
PLAIN = ["Buy cocaine online, fast shipping", "You are worthless, nobody wants you here"]


def _demo_with(tmp_path: Path, reading: dict | str | None) -> Path:
    """The demo checkpoint's files (linked) plus a reading file."""
    folder = tmp_path / "demo-read"
    folder.mkdir()
    for f in DEMO_MODEL_DIR.iterdir():
        (folder / f.name).symlink_to(f)
    if isinstance(reading, dict):
        (folder / READING_FILE).write_text(json.dumps(reading))
    elif isinstance(reading, str):
        (folder / READING_FILE).write_text(reading)
    return folder


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("8uy c0c41n3 0n|1n3, f@$7 $h1pp1n9", "drugs"),
        ("Y0u 4r3 w0r7h|3$$, n0b0dy w4n7$ y0u h3r3", "harassment"),
    ],
)
def test_the_demo_reads_leetspeak_through_its_reader(
    tmp_path: Path, policy, text: str, category: str
) -> None:
    image = Image.new("RGB", (64, 64), "white")
    plain = load_backend(ModelSettings(name="demo", device="cpu", quant="none"))
    [before] = plain.score([ScoringInput(image=image, ocr_text=text)], policy)
    assert category not in before.flagged, before.scores  # the demo cannot read it alone

    reader = Reader(Channel(LEET), lexicon_of(PLAIN))
    folder = _demo_with(tmp_path, reader.to_json())
    backend = load_backend(ModelSettings(name=str(folder), device="cpu", quant="none"))
    assert backend.reader is not None
    [after] = backend.score([ScoringInput(image=image, ocr_text=text)], policy)
    assert category in after.flagged, after.scores
    assert after.ocr_text == text  # stored and shown raw
    assert after.signals["ocr_read_as"] == reader.read(text)
    # Plain text passes through unchanged, and so do its scores.
    [same] = backend.score([ScoringInput(image=image, ocr_text=PLAIN[0])], policy)
    [ref] = plain.score([ScoringInput(image=image, ocr_text=PLAIN[0])], policy)
    assert same.scores == pytest.approx(ref.scores) and "ocr_read_as" not in same.signals


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read it"),
        ({"format": 2}, "format 1"),
        ({"format": 1, "channel": {"subs": {"e": {"3": 1.5}}}, "lexicon": {}}, "bad swap"),
        ({"format": 1, "channel": {"subs": {"e": {"3": 0.7, "€": 0.7}}}, "lexicon": {}}, "sum"),
        ({"format": 1, "channel": {"subs": {}}, "lexicon": {"word": "x"}}, "bad lexicon"),
    ],
)
def test_a_malformed_reading_file_is_refused_by_name(
    tmp_path: Path, content: dict | str, message: str
) -> None:
    folder = _demo_with(tmp_path, content)
    with pytest.raises(WardenError, match=message) as err:
        Reader.load(folder)
    assert READING_FILE in str(err.value)


def test_reader_survives_a_round_trip(tmp_path: Path) -> None:
    reader = Reader(Channel(LEET, aligned_words=7), lexicon_of(PLAIN))
    reader.save(tmp_path)
    back = Reader.load(tmp_path)
    assert back is not None and back.channel.subs == reader.channel.subs
    assert back.lexicon == reader.lexicon and back.channel.aligned_words == 7
    assert back.read("c0c41n3 0n|1n3") == "cocaine online"
    assert Reader.load(tmp_path / "nowhere") is None
