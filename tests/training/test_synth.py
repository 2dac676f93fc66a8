"""SynthMod: determinism, manifest schema, variants, CJK glyphs, photos, CLI, OCR readability.

Run: .venv/bin/pytest tests/training/test_synth.py [-m "not slow"]
"""

from __future__ import annotations

import difflib
import json
import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storage.errors import WardenError
from storage.manifests import ManifestRow, read_manifest
from storage.policy import load_policy
from storage.settings import get_settings
from training import synth
from training import synth_phrases as phrases
from training.synth_render import fit_text, fonts_for, load_font, render_image
from training.synth_text import LATIN_ONLY, TEXT_TRANSFORMS

ROOT = Path(__file__).resolve().parents[2]
WARDEN = ROOT / ".venv" / "bin" / "warden"
RECORD_KEYS = {
    "path",
    "text",
    "external_id",
    "labels",
    "rendered_text",
    "variant",
    "font",
    "lang",
    "family",
    "layout",
}


def _rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synth.generate(out, 160, seed=11, progress=False)
    return out


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synth.generate(a, 30, seed=7, progress=False)
    synth.generate(b, 30, seed=7, progress=False)
    synth.generate(c, 30, seed=8, progress=False)
    assert (a / "manifest.jsonl").read_bytes() == (b / "manifest.jsonl").read_bytes()
    images = sorted(p.name for p in (a / "images").iterdir())
    assert len(images) == 30
    for name in images:
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes(), name
    assert (a / "manifest.jsonl").read_bytes() != (c / "manifest.jsonl").read_bytes()


def test_sample_i_does_not_depend_on_n() -> None:
    assert synth.make_specs(10, seed=3)[:5] == synth.make_specs(5, seed=3)
    assert synth.make_specs(3, seed=3, start=4) == synth.make_specs(7, seed=3)[4:]


def test_manifest_schema_and_labels_match_the_default_policy(dataset: Path) -> None:
    policy = load_policy(ROOT / "assets/policy/default.yaml")
    rows = _rows(dataset / "manifest.jsonl")
    assert len(rows) == 160
    assert len({r["external_id"] for r in rows}) == 160
    for row in rows:
        assert set(row) == RECORD_KEYS
        assert policy.validate_labels(row["labels"]) == row["labels"]
        assert set(row["labels"]) <= set(synth.TEXT_CATEGORIES)
        assert row["variant"] in synth.VARIANTS and row["lang"] in synth.LANGS
        assert row["family"] and row["font"]
        with Image.open(dataset / row["path"]) as image:
            assert image.size == (448, 448)
        if row["layout"] != "photo":
            assert row["rendered_text"].strip()
    # Mostly single-label, some two-label samples, and every category present.
    sizes = [len(r["labels"]) for r in rows]
    assert 0 < sizes.count(2) < sizes.count(1)
    seen = {label for r in rows for label in r["labels"]}
    assert seen == set(synth.TEXT_CATEGORIES)
    # The ingest reader accepts every line and keeps the ground truth.
    parsed = list(read_manifest(dataset / "manifest.jsonl", get_settings().limits))
    assert all(isinstance(p, ManifestRow) for p in parsed)
    assert [p.labels for p in parsed] == [r["labels"] for r in rows]


def test_in_memory_samples_match_the_files(dataset: Path) -> None:
    rows = _rows(dataset / "manifest.jsonl")
    for k, (image, record) in enumerate(synth.iter_samples(5, seed=11)):
        row = rows[k]
        assert record == {key: v for key, v in row.items() if key != "path"}
        with Image.open(dataset / row["path"]) as stored:
            assert np.array_equal(_pixels(image), _pixels(stored))


def _english_poster_spec() -> synth.SampleSpec:
    specs = synth.make_specs(
        60, seed=5, variants=["clean"], categories=["scam_fraud"], langs=["en"]
    )
    return next(s for s in specs if s.layout == "poster" and s.photo is None)


@pytest.mark.parametrize("variant", [v for v in synth.VARIANTS if v != "clean"])
def test_every_variant_changes_the_image(variant: str) -> None:
    clean = synth.with_variant(_english_poster_spec(), "clean")
    changed = synth.with_variant(clean, variant)
    clean_image, clean_record = synth.render_sample(clean)
    image, record = synth.render_sample(changed)
    diff = np.abs(_pixels(image) - _pixels(clean_image)).mean()
    assert diff > 1.0, f"{variant} image barely differs from clean ({diff:.2f})"
    assert record["variant"] == variant and record["labels"] == clean_record["labels"]
    words, clean_words = record["rendered_text"].split(), clean_record["rendered_text"].split()
    if variant in synth.TEXT_VARIANTS:
        assert words != clean_words  # text-level: the drawn text itself changes
    else:
        assert words == clean_words  # image-level: same text, maybe wrapped differently


@pytest.mark.parametrize("variant", ["rotation", "perspective", "blur", "noise", "low_contrast"])
def test_image_variants_change_bare_photos(variant: str) -> None:
    specs = synth.make_specs(80, seed=2, variants=["clean"], categories=["safe"])
    photo = next(s for s in specs if s.layout == "photo" and not s.text)
    clean_image, _ = synth.render_sample(photo)
    image, record = synth.render_sample(synth.with_variant(photo, variant))
    assert np.abs(_pixels(image) - _pixels(clean_image)).mean() > 1.0
    assert record["labels"] == [] and record["rendered_text"] == ""


def test_korean_and_chinese_render_real_glyphs_not_tofu() -> None:
    ko, zh = fonts_for("ko"), fonts_for("zh")
    assert ko and zh, "no CJK font found (fonts-noto-cjk or the noto-cjk-sans-otc wheel)"

    def draw(text: str, face: str) -> np.ndarray:
        return _pixels(render_image(text, "poster", "clean", face, 224, seed=1)[0])

    # A Latin-only face draws the same box for every Hangul syllable: the check can fail.
    assert np.array_equal(
        draw("안녕하세요", "DejaVuSans-Book"), draw("고맙습니다", "DejaVuSans-Book")
    )
    assert not np.array_equal(draw("안녕하세요", ko[0].name), draw("고맙습니다", ko[0].name))
    assert not np.array_equal(draw("你好世界", zh[0].name), draw("谢谢朋友", zh[0].name))
    font = load_font(ko[0].name, 40)
    assert list(font.getmask("한")) != list(font.getmask("글"))


def test_korean_and_chinese_share_of_the_data_set(dataset: Path) -> None:
    rows = _rows(dataset / "manifest.jsonl")
    for lang, low, high in (("ko", "\uac00", "\ud7af"), ("zh", "\u4e00", "\u9fff")):
        mine = [r for r in rows if r["lang"] == lang]
        assert len(mine) >= 8
        assert all(
            any(low <= ch <= high for ch in r["rendered_text"]) for r in mine if r["rendered_text"]
        )
        assert len({r["labels"][0] if r["labels"] else "safe" for r in mine}) >= 3
    only_ko = synth.make_specs(40, seed=1, langs=["ko"])
    assert {s.lang for s in only_ko} == {"ko"}


def test_scikit_image_photos_are_benign(dataset: Path) -> None:
    photos = [r for r in _rows(dataset / "manifest.jsonl") if r["layout"] == "photo"]
    assert len(photos) >= 5
    assert all(r["labels"] == [] and r["family"].startswith("photo.") for r in photos)
    assert any(r["rendered_text"] for r in photos) and any(not r["rendered_text"] for r in photos)


def test_only_leetspeak_when_asked(tmp_path: Path) -> None:
    synth.generate(tmp_path, 25, seed=4, variants=["leetspeak"], progress=False)
    rows = _rows(tmp_path / "manifest.jsonl")
    assert {r["variant"] for r in rows} == {"leetspeak"}
    assert all(r["lang"] == "en" for r in rows)
    assert all(set(r["rendered_text"]) & set("0134579@$!|") for r in rows)


def test_selection_and_user_errors(tmp_path: Path) -> None:
    specs = synth.make_specs(40, seed=1, categories=["drugs,safe"], variants=["blur", "clean"])
    assert {s.labels for s in specs} <= {(), ("drugs",)}
    assert {s.variant for s in specs} <= {"blur", "clean"}
    with pytest.raises(WardenError, match="unknown category"):
        synth.make_specs(1, seed=1, categories=["weapons"])
    with pytest.raises(WardenError, match="unknown language"):
        synth.make_specs(1, seed=1, langs=["fr"])
    synth.generate(tmp_path, 2, seed=1, progress=False)
    with pytest.raises(WardenError, match="already exists"):
        synth.generate(tmp_path, 2, seed=1, progress=False)


def test_long_text_fits_its_box() -> None:
    text = "Congratulations! " * 12 + "secure-verify-account-login-refund.example " * 3
    for face in ("DejaVuSans-Book", "DejaVuSansMono-Book", fonts_for("zh")[0].name):
        for box_w, box_h in ((380, 380), (180, 120)):
            fitted = fit_text(text, face, box_w, box_h, max_px=60)
            assert fitted.width() <= box_w and fitted.height <= box_h
            assert "".join(fitted.lines).replace(" ", "") == text.replace(" ", "")


def test_cli_console_script(tmp_path: Path) -> None:
    env = {**os.environ, "WARDEN_LOG_LEVEL": "WARNING"}
    args = ["synth", "--out", str(tmp_path), "--n", "12", "--seed", "5", "--no-progress"]
    done = subprocess.run(
        [str(WARDEN), *args, "--variants", "leetspeak,blur", "--format", "jpeg"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "12 images" in done.stdout
    rows = _rows(tmp_path / "manifest.jsonl")
    assert len(rows) == 12 and {r["variant"] for r in rows} <= {"leetspeak", "blur"}
    assert all(r["path"].endswith(".jpg") and (tmp_path / r["path"]).is_file() for r in rows)
    # Another process, same arguments: byte-identical files.
    again = tmp_path / "again"
    synth.generate(again, 12, 5, variants=["leetspeak,blur"], image_format="jpeg", progress=False)
    assert (again / "manifest.jsonl").read_bytes() == (tmp_path / "manifest.jsonl").read_bytes()
    assert all(
        (again / r["path"]).read_bytes() == (tmp_path / r["path"]).read_bytes() for r in rows
    )
    bad = subprocess.run(
        [str(WARDEN), *args[:2], str(tmp_path / "x"), "--variants", "sparkles"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "unknown variant 'sparkles'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_rapidocr_reads_a_clean_english_sample() -> None:
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    from rapidocr import RapidOCR

    spec = synth.with_variant(_english_poster_spec(), "clean")
    image, record = synth.render_sample(spec)
    engine = RapidOCR(params={"Det.limit_type": "max", "Det.limit_side_len": 960})
    result = engine(np.asarray(image))
    read = " ".join(result.txts or ())
    expected = " ".join(record["rendered_text"].split())
    ratio = difflib.SequenceMatcher(None, read.lower(), expected.lower()).ratio()
    assert ratio > 0.9, (read, expected)


def test_every_phrase_template_fills_and_survives_the_text_variants() -> None:
    for template in phrases.TEMPLATES:
        for seed in range(3):
            text = phrases.fill_template(template.text, template.lang, random.Random(seed))
            assert "{" not in text and "}" not in text, (template.family, text)
            for name, transform in TEXT_TRANSFORMS.items():
                if template.lang == "en" or name not in LATIN_ONLY:
                    transform(text, random.Random(seed))  # raises if nothing to change
    assert len({t.family for t in phrases.TEMPLATES}) == len(phrases.TEMPLATES)
    for category in synth.TEXT_CATEGORIES:
        english = [t for t in phrases.TEMPLATES if t.labels == (category,) and t.lang == "en"]
        assert len(english) >= 24, (category, len(english))
