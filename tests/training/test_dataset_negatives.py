"""Harmless negatives in `warden dataset build` (issue 18): generated text from Faker, Mimesis
and wordfreq in every build, and, when the corrections teach a reader, harmless text written
through the learnt channel, read back in the SFT prompts like everything else, answered "No"."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from model.reading import Channel
from storage.policy import SAFE
from storage.settings import Settings
from tests.training.test_dataset import _build, _ingest, training_cli
from tests.training.test_substitutions import _leet_ledger
from training.benign import write_in_channel
from training.curation import CuratedItem, top_up_class, top_up_label
from training.dataset import load_trl_split


def _train(out: Path) -> list[dict]:
    return pq.read_table(out / "data" / "items-train.parquet").to_pylist()


def test_every_build_carries_generated_harmless_text(settings: Settings, tmp_path: Path) -> None:
    _ingest(settings, tmp_path / "in", 60, seed=4)
    info = _build(settings, tmp_path / "ds", benign_share=0.2, golden_fraction=0.1)
    train = _train(tmp_path / "ds")
    ledger = [r for r in train if r["origin"] == "ledger"]
    negatives = [r for r in train if r["origin"].startswith("benign:")]
    assert len(negatives) == round(0.2 * len(ledger)) > 0
    assert len({r["origin"] for r in negatives}) >= 3  # several generators and locales
    for r in negatives:
        assert r["labels"] == [] and r["ocr_text"]
        Image.open(io.BytesIO(r["image"]["bytes"])).verify()
    keys = {r["key"] for r in negatives}
    sft = [r for r in load_trl_split(tmp_path / "ds", "sft", "train") if r["key"] in keys]
    assert sft and all(r["completion"][0]["content"][0]["text"] == "No" for r in sft)
    assert info.counts["negatives"] == {"benign": len(negatives)}
    assert "Harmless negatives in train" in (tmp_path / "ds" / "README.md").read_text()
    # Off when asked; nothing else changes.
    _build(settings, tmp_path / "ds0", benign_share=0.0, golden_fraction=0.1)
    assert not [r for r in _train(tmp_path / "ds0") if r["origin"].startswith("benign")]


def test_with_a_learnt_reader_harmless_text_is_written_in_the_evasion(
    settings: Settings, tmp_path: Path
) -> None:
    replay_manifest = _leet_ledger(settings, tmp_path)
    out = tmp_path / "ds"
    info = _build(
        settings, out, replay_ratio=0.3, replay_manifest=replay_manifest, benign_share=0.25
    )
    assert info.card["reading"] is not None
    train = _train(out)
    evasion = [r for r in train if r["origin"] == "benign-evasion"]
    plain = [r for r in train if r["origin"].startswith("benign:")]
    assert evasion and len(evasion) == len(plain)
    assert all(r["labels"] == [] and r["variant"] == "evasion" for r in evasion)
    # Written with the learnt swaps (leetspeak digits), as the corrected items were...
    digits = sum(c.isdigit() for r in evasion for c in r["ocr_text"])
    letters = sum(c.isalpha() for r in evasion for c in r["ocr_text"])
    assert digits > 0.05 * letters, (digits, letters)
    # ...and the SFT prompt holds them as the reader reads them, answered "No".
    keys = {r["key"] for r in evasion}
    sft = [r for r in load_trl_split(out, "sft", "train") if r["key"] in keys]
    assert sft and all(r["completion"][0]["content"][0]["text"] == "No" for r in sft)
    prompts = [r["prompt"][1]["content"][1]["text"] for r in sft]
    prompt_digits = sum(c.isdigit() for p in prompts for c in p)
    assert prompt_digits < sum(c.isdigit() for r in evasion for c in r["ocr_text"]) * len(
        sft
    ) / len(evasion)


def test_write_in_channel_follows_the_channel_probabilities() -> None:
    subs = Channel({"e": {"3": 0.5}, "o": {"0": 0.9}}).subs
    rng = random.Random(0)
    text = "hello everyone, the door is open " * 50
    written = write_in_channel(text, subs, rng)
    assert len(written) == len(text)
    n_e = text.count("e")
    assert 0.4 * n_e < written.count("3") < 0.6 * n_e
    assert written.count("0") > 0.8 * text.count("o")
    assert write_in_channel("Plain", {}, rng) == "Plain"


def test_cli_benign_share(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    _ingest(settings, tmp_path / "in", 40, seed=8)
    with training_cli(settings, monkeypatch) as invoke:
        for share, out in (("0.3", "d1"), ("0", "d2")):
            args = ["dataset", "build", "--out", str(tmp_path / out), "--benign-share", share]
            res = invoke(args)
            assert res.exit_code == 0, res.output
    ledger = [r for r in _train(tmp_path / "d1") if r["origin"] == "ledger"]
    n1 = sum(r["origin"].startswith("benign:") for r in _train(tmp_path / "d1"))
    n2 = sum(r["origin"].startswith("benign:") for r in _train(tmp_path / "d2"))
    assert n1 == round(0.3 * len(ledger)) > 0 and n2 == 0


def test_cli_refuses_a_negative_retention_floor(settings: Settings, monkeypatch) -> None:
    with training_cli(settings, monkeypatch) as invoke:
        for cmd in (["dataset", "build", "--out", "x"], ["retrain"]):
            for flag in ("--retention-benign", "--retention-per-category"):
                res = invoke([*cmd, flag, "-1"])
                assert res.exit_code == 2 and flag in res.output, res.output


def test_held_out_harmless_rows_fill_golden_and_validation_never_train(
    settings: Settings, tmp_path: Path
) -> None:
    """The gate bounds the benign flag rate rise on golden's harmless rows: a few dozen
    ledger rows cannot bound it near the tolerance, so the build adds harmless text from
    generators training never draws (held-out locales and seeds), half of it written in the
    learnt evasion, in golden and in validation, and none of it in train."""
    replay_manifest = _leet_ledger(settings, tmp_path)
    out = tmp_path / "ds"
    info = _build(
        settings,
        out,
        replay_ratio=0.3,
        replay_manifest=replay_manifest,
        benign_share=0.25,
        benign_golden=40,
        benign_validation=10,
    )
    assert info.card["reading"] is not None
    assert info.counts["benign_held_out"] == {"golden": 40, "validation": 10}

    def split(name: str) -> list[dict]:
        return pq.read_table(out / "data" / f"items-{name}.parquet").to_pylist()

    golden, val, train = split("golden"), split("validation"), split("train")
    held_g = [r for r in golden if r["origin"].startswith("benign-heldout")]
    held_v = [r for r in val if r["origin"].startswith("benign-heldout")]
    assert len(held_g) == 40 and len(held_v) == 10
    assert all(r["labels"] == [] and r["ocr_text"] for r in held_g + held_v)
    evasion = [r for r in held_g if r["origin"] == "benign-heldout-evasion"]
    # Every other row, where the channel changes it (not Korean or Chinese under leetspeak).
    assert 10 < len(evasion) <= 20 and all(r["variant"] == "evasion" for r in evasion)
    plain = [r for r in held_g if r["origin"] != "benign-heldout-evasion"]
    assert all(r["variant"] == "clean" for r in plain)
    digits = sum(c.isdigit() for r in evasion for c in r["ocr_text"])
    assert digits > 0.05 * sum(c.isalpha() for r in evasion for c in r["ocr_text"])
    keys = {r["key"] for r in held_g + held_v}
    assert not keys & {r["key"] for r in train}
    assert keys & set(info.card["golden_keys"]) == {r["key"] for r in held_g}
    # Not the training negatives' text: other generators' locales and seeds.
    neg_text = {r["ocr_text"] for r in train if r["origin"].startswith("benign")}
    assert not {r["ocr_text"] for r in held_g + held_v} & neg_text
    # They are golden rows, not retention rows (the replay's held-out share).
    from training.evaluate import read_dataset

    rows, _key = read_dataset(out, "golden")
    ret = {r.key for r in rows if r.retention}
    assert ret and not ret & {r["key"] for r in held_g}
    assert ret == {r["key"] for r in golden if r["origin"].startswith("replay")}
    # Off by default for `warden dataset build`.
    plain = _build(settings, tmp_path / "ds0", golden_fraction=0.1)
    assert plain.counts["benign_held_out"] == {"golden": 0, "validation": 0}


def test_validation_holds_replay_rows_that_are_never_trained_on(
    settings: Settings, tmp_path: Path
) -> None:
    """Checkpoint choice and threshold fitting read validation: with only the corrections'
    few rows there, a category's threshold looks free to raise. A share of the replay pool
    (the original categories) is held out into validation, apart from golden's retention
    rows and from train."""
    replay_manifest = _leet_ledger(settings, tmp_path)
    out = tmp_path / "ds"
    info = _build(settings, out, replay_ratio=0.3, replay_manifest=replay_manifest)
    val = pq.read_table(out / "data" / "items-validation.parquet").to_pylist()
    golden = pq.read_table(out / "data" / "items-golden.parquet").to_pylist()
    replay_val = [r for r in val if r["origin"].startswith("replay")]
    assert replay_val and info.counts["replay_validation"] == len(replay_val)
    assert len({tuple(r["labels"]) for r in replay_val}) >= 3  # stratified over classes
    train_keys = {r["key"] for r in _train(out)}
    golden_keys = {r["key"] for r in golden}
    assert not {r["key"] for r in replay_val} & (train_keys | golden_keys)
    # Off when asked: validation holds no replay row.
    _build(
        settings,
        tmp_path / "ds0",
        replay_ratio=0.3,
        replay_manifest=replay_manifest,
        replay_val_fraction=0.0,
    )
    val0 = pq.read_table(tmp_path / "ds0" / "data" / "items-validation.parquet").to_pylist()
    assert not [r for r in val0 if r["origin"].startswith("replay")]


def _retention(
    settings: Settings, out: Path, replay_manifest: Path, **options: int
) -> tuple[dict, list[dict], set[str]]:
    """Build with a 10% retention share and `options`: (card counts, retention rows, keys of
    every train and validation row)."""
    info = _build(
        settings,
        out,
        replay_ratio=0.3,
        replay_manifest=replay_manifest,
        golden_fraction=0.1,
        **options,
    )
    golden = pq.read_table(out / "data" / "items-golden.parquet").to_pylist()
    val = pq.read_table(out / "data" / "items-validation.parquet").to_pylist()
    used = {r["key"] for r in _train(out) + val}
    return info.counts, [r for r in golden if r["origin"].startswith("replay")], used


def test_retention_holds_at_least_the_harmless_rows_asked_for(
    settings: Settings, tmp_path: Path
) -> None:
    """The gate bounds a benign flag rate rise on retention's harmless rows; a 10% share of the
    replay pool holds too few for the bound to come near the tolerance. `retention_benign`
    tops them up from the pool's harmless items, held out of train and validation like every
    retention row (the top-up draws harmless items alone: the test below)."""
    replay_manifest = _leet_ledger(settings, tmp_path)
    pool_harmless = sum(
        1
        for line in replay_manifest.read_text().splitlines()
        if not [c for c in json.loads(line)["labels"] if c != "safe"]
    )

    def retention(out: Path, at_least: int) -> tuple[list[dict], set[str]]:
        return _retention(settings, out, replay_manifest, retention_benign=at_least)[1:]

    base, _ = retention(tmp_path / "ds0", 0)
    harmless0 = [r for r in base if not r["labels"]]
    assert 0 < len(harmless0) < pool_harmless - 3
    want = len(harmless0) + 3
    topped, used = retention(tmp_path / "ds1", want)
    harmless = [r for r in topped if not r["labels"]]
    assert len(harmless) == want
    assert {r["key"] for r in harmless0} < {r["key"] for r in harmless}
    assert not {r["key"] for r in topped} & used  # never trained on, never validation
    # More than the pool holds (the manifest's and the earlier builds' train rows): every
    # harmless item there is that nothing else took, once each; no error.
    most, used = retention(tmp_path / "ds2", 10 * pool_harmless)
    keys = [r["key"] for r in most if not r["labels"]]
    assert len(harmless) < len(keys) == len(set(keys)) < 10 * pool_harmless
    assert not set(keys) & used


def test_the_top_up_draws_only_the_class_asked_for_and_only_what_is_missing() -> None:
    items = [
        CuratedItem(
            key=f"{i:03d}", item_id=None, labels=() if i % 3 else ("drugs",), ocr_text="", text=None
        )
        for i in range(30)
    ]  # 20 harmless, 10 drugs
    picked = {"000", "001", "002"}  # one drugs row, two harmless
    added = top_up_class(items, picked, SAFE, 6, seed=1, salt="t")
    assert len(added) == 4 and not added & picked
    assert all(not next(it for it in items if it.key == k).labels for k in added)
    assert added == top_up_class(items, picked, SAFE, 6, seed=1, salt="t")  # seeded
    assert top_up_class(items, picked, SAFE, 2, seed=1, salt="t") == set()  # already there
    assert len(top_up_class(items, picked, SAFE, 100, seed=1, salt="t")) == 18  # all there are


def test_retention_holds_at_least_the_rows_of_each_category_asked_for(
    settings: Settings, tmp_path: Path
) -> None:
    """The gate's per-category lines compare recall on each category's retention rows with a
    3-point tolerance: on a few dozen rows two are more than that. `retention_per_category`
    tops each category the pool holds up to that many rows (a row of two categories counts
    for both), held out of train and validation, and the card counts them per category."""
    replay_manifest = _leet_ledger(settings, tmp_path)

    def retention(out: Path, at_least: int) -> tuple[dict, list[dict], set[str]]:
        return _retention(settings, out, replay_manifest, retention_per_category=at_least)

    def per_category(rows: list[dict]) -> Counter:
        return Counter(c for r in rows for c in r["labels"])

    counts0, base, _ = retention(tmp_path / "ds0", 0)
    before = per_category(base)
    assert counts0["retention_by_category"] == dict(
        sorted((before + Counter(safe=sum(not r["labels"] for r in base))).items())
    )
    card = (tmp_path / "ds0" / "README.md").read_text()
    assert (
        f"Retention rows in golden (replay held out; the gate's per-category lines): "
        f"{counts0['retention']}, per category {json.dumps(counts0['retention_by_category'])}."
    ) in card
    want = min(before.values()) + 2
    counts, topped, used = retention(tmp_path / "ds1", want)
    after = per_category(topped)
    assert set(after) == set(before)
    assert all(after[c] >= min(want, before[c] + 2) for c in after), (before, after)
    assert {r["key"] for r in base} < {r["key"] for r in topped}
    assert not {r["key"] for r in topped} & used  # never trained on, never validation


def test_the_label_top_up_counts_every_row_that_carries_the_category() -> None:
    def item(i: int, labels: tuple[str, ...]) -> CuratedItem:
        return CuratedItem(key=f"{i:03d}", item_id=None, labels=labels, ocr_text="", text=None)

    items = [
        item(i, ("illegal_ads", "scam_fraud") if i % 2 else ("scam_fraud",)) for i in range(10)
    ]
    items += [item(10 + i, ("illegal_ads",)) for i in range(5)]
    picked = {"001", "003"}  # two rows carrying both
    added = top_up_label(items, picked, "illegal_ads", 4, seed=1, salt="t")
    assert len(added) == 2 and all("illegal_ads" in items[int(k)].labels for k in added)
    assert top_up_label(items, picked, "scam_fraud", 2, seed=1, salt="t") == set()
    assert len(top_up_label(items, picked, "scam_fraud", 50, seed=1, salt="t")) == 8


def test_evasion_negatives_are_texts_the_channel_changed_and_the_rest_stay_plain() -> None:
    """A Latin swap leaves Korean and Chinese as they were: such a row is no evasion, it would
    be one more plain harmless row in one script (a swap turn's Korean and Chinese train rows
    went more harmless than harmful, and most rows it lost were Korean or Chinese)."""
    from types import SimpleNamespace

    from training.dataset import benign_negatives

    def replay(texts: list[str]) -> list[CuratedItem]:
        return [
            CuratedItem(key=f"r{i}", item_id=None, labels=(), ocr_text=t, text=None)
            for i, t in enumerate(texts)
        ]

    swap = SimpleNamespace(channel=Channel({"e": {"€": 1.0}, "o": {"ø": 1.0}}))
    pool = replay(["시험 공부 같이 해요", "明天下午开会", "Keep the door open"] * 4)
    items, images = benign_negatives(20, 3, swap, pool)
    evasion = [it for it in items if it.origin == "benign-evasion"]
    clean = [it for it in items if it.origin.startswith("benign:")]
    assert len(items) == 40 and len(images) == 40 and len(evasion) + len(clean) == 40
    assert len(evasion) == 20 and all(set(it.ocr_text) & {"€", "ø"} for it in evasion)
    assert all(it.variant == "evasion" for it in evasion)
    assert not any("€" in it.ocr_text or "ø" in it.ocr_text for it in clean)
    # The first half is what it was without a reader: the same texts, in the same order.
    alone, _ = benign_negatives(20, 3, None, pool)
    assert [it.ocr_text for it in clean[:20]] == [it.ocr_text for it in alone]
    # A reader that learnt no swap writes nothing: every negative is plain.
    none = SimpleNamespace(channel=Channel({}))
    items, _ = benign_negatives(20, 3, none, pool)
    assert len(items) == 40 and all(it.origin.startswith("benign:") for it in items)
    assert len({it.ocr_text for it in items}) == 40
