"""The character channel learnt from corrections: what it finds in SynthMod leetspeak and
look-alike text, what it leaves alone (ordinary text, OCR noise), the reader it yields, and the
dataset build that writes that reader and reads its SFT prompts through it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from model.reading import READING_FILE, Reader, lexicon_of
from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.ingest import ingest_paths
from storage.settings import Settings
from tests.training.test_dataset import POLICY, _build, _ingest, training_cli
from training.dataset import load_trl_split
from training.substitutions import estimate_channel
from training.synth import make_specs, render_sample
from training.synth_text import homoglyph, leetspeak


def _texts(n: int, seed: int) -> list[str]:
    out = []
    for spec in make_specs(n, seed, variants=["clean"], size=96):
        if spec.lang == "en" and spec.text:
            out.append(spec.text)
    return out


def _written(texts: list[str], transform, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [transform(t, rng) for t in texts]


def test_leetspeak_swaps_are_found_from_the_corrections_alone() -> None:
    reference = _texts(400, seed=1)
    observed = _written(_texts(300, seed=2), leetspeak, seed=3)
    ch = estimate_channel(observed, reference)
    # SynthMod writes e as 3, o as 0, t as 7 in 50-95% of a phrase's eligible letters.
    for intended, obs in (("e", "3"), ("o", "0"), ("t", "7"), ("a", "4"), ("s", "5")):
        assert 0.2 <= ch.subs[intended][obs] <= 0.95, (intended, ch.subs.get(intended))
    # Nothing learnt that leetspeak does not do: every swap ends in a digit or a symbol.
    assert all(not o.isalpha() for obs in ch.subs.values() for o in obs), ch.summary(40)
    assert ch.affected_items >= 0.9 * len(observed) and ch.aligned_words > 500


def test_look_alike_letters_are_found_too() -> None:
    reference = _texts(400, seed=1)
    observed = _written(_texts(300, seed=2), homoglyph, seed=3)
    ch = estimate_channel(observed, reference)
    # Cyrillic/Greek look-alikes are folded by TR39 normalisation before the channel, so the
    # channel learns only what that leaves: SynthMod's drawn multi-character letters.
    assert not any(not o.isascii() for obs in ch.subs.values() for o in obs), ch.summary()
    assert ch.subs["k"].get("|<", 0) > 0.2 and ch.subs["w"].get("vv", 0) > 0.2, ch.summary()
    reader = Reader(ch, lexicon_of(reference))
    assert reader.read("\u0441\u043e\u0441aine |<illed vvork") == "cocaine killed work"


def test_ordinary_corrections_and_ocr_noise_give_no_channel() -> None:
    reference = _texts(400, seed=1)
    fresh = _texts(300, seed=2)
    assert estimate_channel(fresh, reference).empty
    # 2% of characters replaced at random (an OCR engine's slips): no systematic swap.
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    noisy = ["".join(rng.choice(letters) if rng.random() < 0.02 else c for c in t) for t in fresh]
    assert estimate_channel(noisy, reference).empty


def test_the_reader_reads_leetspeak_back_and_leaves_plain_text_and_numbers_alone() -> None:
    plain = _texts(400, seed=1)
    observed = _written(_texts(300, seed=2), leetspeak, seed=3)
    reader = Reader(estimate_channel(observed, plain), lexicon_of(plain))
    # Unseen leetspeak of the reference phrases: most words come back exactly.
    originals = plain[:150]
    written = _written(originals, leetspeak, seed=9)
    back = right = 0
    for orig, w in zip(originals, written, strict=True):
        for o, x, r in zip(orig.split(), w.split(), reader.read(w).split(), strict=True):
            if o != x:
                back += 1
                right += r == o
    assert right / back > 0.6, (right, back)
    # Plain text, numbers, prices and handles are never rewritten.
    for text in plain[150:] + ["SSN 000-44-9901, DOB 2004-06-13", "$120 each @happy_bet83"]:
        assert reader.read(text) == text
    # Hostile sizes: only the head is read, the rest kept verbatim.
    huge = "fr33 " * 5000
    assert reader.read(huge)[-100:] == huge[-100:]


def _leet_ledger(settings: Settings, tmp_path: Path) -> Path:
    """A ledger of leetspeak-written items corrected by a moderator; returns a replay manifest
    of plain SynthMod items."""
    corr = tmp_path / "corr"
    corr.mkdir()
    rng = random.Random(5)
    lines, labels = [], {}
    for spec in make_specs(80, 11, variants=["clean"], size=96):
        if spec.lang != "en" or not spec.text:
            continue
        image, rec = render_sample(spec)
        name = f"{spec.index}.png"
        image.save(corr / name)
        labels[name] = rec["labels"] or ["safe"]
        lines.append(json.dumps({"path": name, "text": leetspeak(spec.text, rng)}))
    (corr / "m.jsonl").write_text("\n".join(lines) + "\n")
    replay = tmp_path / "replay"
    (replay / "images").mkdir(parents=True)
    rlines = []
    for spec in make_specs(120, 12, variants=["clean"], size=96):
        image, rec = render_sample(spec)
        rel = f"images/{spec.index}.png"
        image.save(replay / rel)
        rlines.append(json.dumps({"path": rel, **rec}))
    (replay / "manifest.jsonl").write_text("\n".join(rlines) + "\n")

    engine = make_engine(settings.database_url)
    ingest_paths(engine, settings, [corr / "m.jsonl"], source="loop", policy=POLICY)
    from sqlalchemy import select

    from storage.models import Item

    with unit_of_work(engine) as s:
        for item in s.scalars(select(Item)):
            # The analyst's OCR text is the leetspeak post text here (what the model saw).
            item.meta = {**(item.meta or {}), "ocr_text": item.text}
            record_decision(
                s,
                item_id=item.id,
                categories=labels[item.filename.rsplit("/", 1)[-1]],
                source="loop",
                policy=POLICY,
            )
    engine.dispose()
    return replay / "manifest.jsonl"


def test_build_learns_a_reader_and_reads_the_sft_prompts_through_it(
    settings: Settings, tmp_path: Path
) -> None:
    """Corrections written in leetspeak + a replay manifest: the build learns the swaps,
    writes reading.json, and the SFT prompts hold the text as read (items keep the raw OCR)."""
    replay_manifest = _leet_ledger(settings, tmp_path)
    out = tmp_path / "ds"
    info = _build(settings, out, replay_ratio=0.3, replay_manifest=replay_manifest)
    swaps = {(x["intended"], x["observed"]) for x in info.card["reading"]["substitutions"]}
    assert {("e", "3"), ("o", "0")} <= swaps, swaps
    reader = Reader.load(out)
    assert reader is not None and (out / READING_FILE).is_file()
    train = pq.read_table(out / "data" / "items-train.parquet").to_pylist()
    raw = {r["key"]: r["ocr_text"] for r in train if r["origin"] == "ledger"}
    assert raw and sum(any(c.isdigit() for c in t) for t in raw.values()) > len(raw) // 2
    sft = [r for r in load_trl_split(out, "sft", "train") if r["key"] in raw]
    prompt = sft[0]["prompt"][1]["content"][1]["text"]
    assert reader.read(raw[sft[0]["key"]])[:40] in prompt  # read, as serving will read it
    digits_raw = sum(c.isdigit() for t in raw.values() for c in t)
    digits_read = sum(c.isdigit() for t in raw.values() for c in reader.read(t))
    assert digits_read < 0.6 * digits_raw, (digits_read, digits_raw)
    assert "Character swaps the corrections show" in (out / "README.md").read_text()
    # The card says what normalisation did and why each swap was kept (issue 18).
    evidence = info.card["reading_evidence"]
    assert set(evidence["normalisation"]) >= {"nfkc_tokens", "confusables_folded", "words_joined"}
    kept = {(r["intended"], r["observed"]): r for r in evidence["swaps"]["kept"]}
    assert kept[("e", "3")]["items"] >= 3 and kept[("e", "3")]["g"] >= 20, kept
    readme = (out / "README.md").read_text()
    assert "Normalisation of the corrected OCR text" in readme and "Swaps kept:" in readme


def test_ordinary_corrections_build_no_reader(settings: Settings, tmp_path: Path) -> None:
    _ingest(settings, tmp_path / "corr", 40, seed=21)
    info = _build(settings, tmp_path / "ds")
    assert info.card["reading"] is None and not (tmp_path / "ds" / READING_FILE).exists()


def test_cli_lists_the_swaps_and_no_reading_turns_it_off(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay_manifest = _leet_ledger(settings, tmp_path)
    with training_cli(settings, monkeypatch) as invoke:
        args = ["dataset", "build", "--replay-manifest", str(replay_manifest)]
        res = invoke([*args, "--out", str(tmp_path / "d1")])
        assert res.exit_code == 0, res.output
        assert "character swaps in the corrections" in res.stdout and "e->3" in res.stdout
        assert (tmp_path / "d1" / READING_FILE).is_file()
        res = invoke([*args, "--out", str(tmp_path / "d2"), "--no-reading"])
        assert res.exit_code == 0, res.output
        assert "character swaps" not in res.stdout
        assert not (tmp_path / "d2" / READING_FILE).exists()
