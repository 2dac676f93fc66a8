"""A reader is sure or silent (issue 18): too little evidence learns nothing, dot-split text
learns nothing, a reader that would change a plain replay word is refused swap by swap, and a
reader learnt from real swaps changes no word of benign text that other code (Faker) wrote."""

from __future__ import annotations

import random

import pytest
from faker import Faker

from model.reading import MIN_WORD, Channel, Reader, lexicon_of
from training.lexicon import english_words
from training.substitutions import MIN_G, Evidence, estimate_channel, g_statistic, safe_reader
from training.synth import make_specs
from training.synth_text import leetspeak

LEET_SWAPS = {
    ("a", "4"), ("a", "@"), ("b", "8"), ("e", "3"), ("g", "9"), ("i", "!"), ("i", "1"),
    ("l", "1"), ("l", "|"), ("o", "0"), ("s", "$"), ("s", "5"), ("t", "7"),
}  # fmt: skip


def _texts(n: int, seed: int) -> list[str]:
    specs = make_specs(n, seed, variants=["clean"], size=96)
    return [s.text for s in specs if s.lang == "en" and s.text]


@pytest.fixture(scope="module")
def reference() -> list[str]:
    return _texts(400, seed=1)


def _benign(n: int, seed: int) -> list[str]:
    """Plain English text that SynthMod did not write: sentences, addresses, names, prices."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    out = []
    for _ in range(n):
        out += [
            fake.sentence(nb_words=12),
            fake.address().replace("\n", ", "),
            f"{fake.catch_phrase()}. {fake.bs()}",
            f"{fake.name()} paid ${fake.pyint()} on {fake.date()} at {fake.time()}",
        ]
    return out


def _dotted(texts: list[str], seed: int) -> list[str]:
    """Ordinary corrections where the text has a dot inserted in most long words."""
    rng = random.Random(seed)
    out = []
    for t in texts:
        words = []
        for w in t.split():
            if len(w) >= 4 and rng.random() < 0.7:
                k = rng.randint(1, len(w) - 1)
                w = f"{w[:k]}.{w[k:]}"
            words.append(w)
        out.append(" ".join(words))
    return out


def test_dot_split_corrections_learn_no_channel(reference: list[str]) -> None:
    """80 corrected items with dots inserted in words: the old learner took r→"." from them
    and read "at 9 a.m." as "at 9 arm."."""
    observed = _dotted(_texts(400, seed=2)[:80], seed=0)
    evidence = Evidence()
    ch = estimate_channel(observed, reference, evidence=evidence)
    assert ch.empty, ch.summary()
    assert not evidence.kept


def test_too_few_items_learn_nothing_however_many_words(reference: list[str]) -> None:
    """Two long items in leetspeak hold hundreds of aligned words, but only two items."""
    rng = random.Random(3)
    phrases = _texts(300, seed=2)
    two = [leetspeak(" ".join(phrases[:40]), rng), leetspeak(" ".join(phrases[40:80]), rng)]
    evidence = Evidence()
    ch = estimate_channel(two, reference, evidence=evidence)
    assert ch.aligned_words > 100 and ch.empty, ch.summary()
    assert any("2 items < 3" in r["why"] for r in evidence.refused), evidence.refused
    # The same writing over 30 items is learnt: the rule is about items, not the writing.
    more = [leetspeak(p, rng) for p in phrases[:30]]
    assert not estimate_channel(more, reference).empty


def test_leetspeak_still_learns_all_13_swaps_with_their_evidence(reference: list[str]) -> None:
    rng = random.Random(3)
    observed = [leetspeak(t, rng) for t in _texts(300, seed=2)]
    evidence = Evidence()
    ch = estimate_channel(observed, reference, evidence=evidence)
    assert {(c, o) for c, obs in ch.subs.items() for o in obs} == LEET_SWAPS
    for row in evidence.kept:
        assert row["words"] >= 5 and row["items"] >= 3 and row["g"] >= MIN_G, row


def test_g_statistic_against_no_channel() -> None:
    assert g_statistic(0, 50, 0.1) == 0.0 and g_statistic(5, 50, 0.1) == 0.0  # at background
    assert g_statistic(40, 50, 0.1) > 100  # "3" behind e four times in five: a swap
    assert g_statistic(3, 20, 0.08) < MIN_G  # a few hits over a common letter: not sure


def test_a_reader_that_changes_a_plain_replay_word_is_refused() -> None:
    """The issue's reader (r→"." 0.56, e→"." 0.35) read "h.i.s" as "heirs": refused; a real
    swap learnt beside it survives the check."""
    lexicon = {"heirs": 3, "arm": 3, "free": 5, "money": 5}
    bad = Channel({"r": {".": 0.56}, "e": {".": 0.35, "3": 0.6}})
    assert Reader(bad, lexicon).read("h.i.s") == "heirs"  # the defect, without the check
    replay = ["Call h.i.s office at 9 a.m. tomorrow", "free money for everyone"]
    evidence = Evidence()
    reader = safe_reader(bad, lexicon, replay, evidence)
    # r→"." goes; e→"." changes no plain word once r→"." is gone, so the check keeps it.
    assert reader is not None and reader.channel.subs == {"e": {".": 0.35, "3": 0.6}}
    assert reader.read("h.i.s at 9 a.m.") == "h.i.s at 9 a.m."
    assert reader.read("fr33 m0n3y") == "free m0n3y"  # o→0 was never learnt: left raw
    assert [(r["intended"], r["observed"]) for r in evidence.refused] == [("r", ".")]
    assert "h.i.s → heirs" in evidence.refused[0]["why"]
    # Only bad swaps: no reader at all.
    assert safe_reader(Channel({"r": {".": 0.56}}), lexicon, replay) is None


def test_a_learnt_reader_changes_no_word_of_benign_text_written_elsewhere(
    reference: list[str],
) -> None:
    rng = random.Random(3)
    observed = [leetspeak(t, rng) for t in _texts(300, seed=2)]
    lexicon = lexicon_of(reference)
    for word in english_words(min_len=MIN_WORD):
        lexicon.setdefault(word, 1)
    reader = safe_reader(estimate_channel(observed, reference), lexicon, reference)
    assert reader is not None and len(reader.channel.subs) == 9
    benign = _benign(60, seed=7)
    changed = [(t, reader.read(t)) for t in benign if reader.read(t) != t]
    assert changed == []
    # And it still reads the writing back.
    assert reader.read("fr33 m0n3y, 8uy n0w") == "free money, buy now"


# Measured: zero_width and mixed_script all but a few, spelled_out 87% (dotted invented names
# and domains stay), inserted_symbol ~3 in 4
# (invented names such as "Ul*varic" are in no lexicon, "cl-own" is below the join odds).
SHARE = {"spelled_out": 0.85, "zero_width": 0.9, "inserted_symbol": 0.7, "mixed_script": 0.9}


@pytest.mark.parametrize("family", sorted(SHARE))
def test_synthmod_evasions_that_need_no_learning_are_normalised(family: str) -> None:
    from model.normalise import normalise_text
    from model.reading import words_of
    from training.synth_text import EVASION_TRANSFORMS

    write = EVASION_TRANSFORMS[family]
    rng = random.Random(4)
    hidden = back = 0
    for text in _texts(300, seed=6):
        try:
            raw = write(text, rng)
        except ValueError:
            continue
        words = [w for w in words_of(text) if w not in words_of(raw)]
        hidden += len(words)
        back += sum(w in words_of(normalise_text(raw)) for w in words)
    assert hidden > 50 and back >= SHARE[family] * hidden, (back, hidden)


def test_synthmod_multi_character_letters_are_learnt(reference: list[str]) -> None:
    from training.synth_text import multi_character

    rng = random.Random(3)
    observed = [multi_character(t, rng) for t in _texts(300, seed=2) if set(t) & set("kwaoh")]
    ch = estimate_channel(observed, reference)
    learnt = {(c, o) for c, obs in ch.subs.items() for o in obs}
    assert {("k", "|<"), ("w", "vv"), ("a", "/\\"), ("o", "()")} <= learnt, ch.summary()
    assert all(len(o) > 1 for _, o in learnt), ch.summary()
