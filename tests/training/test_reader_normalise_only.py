"""A split/separator evasion teaches no character swap, yet the reader must still undo it at
serving as the dataset's prompts did: a build whose corrections normalisation changes writes a
reader that is normalisation alone (issue 18), and none when the corrections are plain or when
normalisation would change a plain word of the replay text."""

from __future__ import annotations

import random

from faker import Faker

from bench.glyph_sets import split_words
from model.normalise import normalise_text
from training.curation import CuratedItem
from training.dataset import MIN_NORMALISED, PLAIN_MIN, _learn_reading, plain_words_lost
from training.lexicon import english_words


def _items(texts: list[str], origin: str = "ledger") -> list[CuratedItem]:
    return [
        CuratedItem(key=f"{origin}{i}", item_id=i, labels=(), ocr_text=t, text=None, origin=origin)
        for i, t in enumerate(texts)
    ]


def _sentences(n: int, seed: int) -> list[str]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return [fake.sentence(nb_words=10) for _ in range(n)]


def test_split_corrections_give_a_normalising_reader_plain_ones_none() -> None:
    pool = _items(_sentences(80, seed=1), origin="replay:synth")
    rng = random.Random(0)
    plain = _sentences(40, seed=2)
    split = [split_words(t, rng, share=0.8) for t in plain]
    assert sum(s != p for s, p in zip(split, plain, strict=True)) >= MIN_NORMALISED

    reader, report = _learn_reading(_items(split), pool)
    assert reader is not None and reader.channel.empty
    assert report["normalisation_only"]["replay_changed"] == 0
    assert report["normalisation"]["words_joined"] > 0
    # It reads the split lines back to what was written, and leaves plain text alone.
    read_back = [reader.read(t) for t in split]
    assert sum(r == p for r, p in zip(read_back, plain, strict=True)) >= 0.9 * len(plain)
    held_out = _sentences(100, seed=3)
    assert [reader.read(t) for t in held_out] == held_out

    # Plain corrections: nothing to learn, no reader.
    reader, report = _learn_reading(_items(plain), pool)
    assert reader is None and "normalisation_only" not in report


def test_replay_text_with_its_own_evasions_does_not_refuse_normalisation() -> None:
    # Replay rows are not all plain: SynthMod's carry splits and zero-width characters, which
    # normalisation rightly joins. Refusing on any changed replay text refused every split
    # turn (bench/results/loop_outside_split.json before this: 54 replay texts, reader none).
    rng = random.Random(1)
    split = [split_words(t, rng, share=0.8) for t in _sentences(40, seed=4)]
    evasive = ["f\u200br\u200be\u200be delivery", "Time to take out the trash, g o n e by summer"]
    pool = _items(_sentences(40, seed=5) + evasive, "replay:synth")
    reader, report = _learn_reading(_items(split), pool)
    assert reader is not None and reader.channel.empty
    assert report["normalisation_only"]["replay_changed"] == 2
    assert report["normalisation_only"]["replay_plain_words_changed"] == 0


def test_plain_words_lost_counts_dictionary_words_only() -> None:
    words = frozenset(english_words(min_len=PLAIN_MIN))
    # A join that ate plain words would be refused: "get" and "her" are gone.
    assert plain_words_lost("come to get her now", "come together now", words) == 2
    assert plain_words_lost("well-known place", "wellknown place", words) == 1
    # Fragments, look-alikes and unchanged text lose nothing.
    assert plain_words_lost("g o n e by summer", "gone by summer", words) == 0
    assert plain_words_lost("Throwba.ck to la_st summer", "Throwback to last summer", words) == 0
    assert plain_words_lost("Gооd (news), friends!", "Good (news), friends!", words) == 0
    assert (
        plain_words_lost("Please keep the door closed.", "Please keep the door closed.", words) == 0
    )


def test_a_word_wrapped_across_lines_may_be_joined_but_two_words_may_not() -> None:
    """SynthMod wraps long lines inside words ("sp\\nread"); joining a short non-word fragment
    with its neighbour into a dictionary word loses nothing (2 of 2,400 replay texts refused a
    whole split turn's normalisation before). Joining two words still loses one."""
    words = frozenset(english_words(min_len=PLAIN_MIN))
    wrapped = "History class: how\nextremist\npropaganda sp\nread in the 1930s"
    assert plain_words_lost(wrapped, normalise_text(wrapped), words) == 0
    assert plain_words_lost("see eve\nry rib", "see every rib", words) == 0
    assert plain_words_lost("the rapist", "therapist", words) == 1
    assert plain_words_lost("in side", "inside", words) == 1
    assert plain_words_lost("sp read", "spread out", words) == 0
    assert plain_words_lost("sp read", "sp", words) == 1
    # Longer pieces that are no word anywhere, as SynthMod splits words (4,800 replay texts held
    # these three, and refused a split turn's reader): the join is a dictionary word.
    assert plain_words_lost("so me suns\nhine", "so me sunshine", words) == 0
    assert plain_words_lost("comple ted the course", "completed the course", words) == 0
    assert plain_words_lost("and\never ybody at", "and\neverybody at", words) == 0
    # A longer neighbour that is a word is no fragment: the join loses both words.
    assert plain_words_lost("some thing", "something", words) == 2
    assert plain_words_lost("every body", "everybody", words) == 2
    # "rapist" is in none of the word lists, but written often: a word, so this join is lost.
    assert plain_words_lost("the rapist said", "therapist said", words) == 1
