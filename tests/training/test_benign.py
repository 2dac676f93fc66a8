"""Harmless text from Faker, Mimesis and wordfreq (training.benign): deterministic, varied,
three languages, nothing that names a violation, and a measuring set that shares no locale or
text with the training one."""

from __future__ import annotations

from collections import Counter

from training.benign import (
    HELDOUT_SOURCES,
    TRAIN_SOURCES,
    benign_specs,
    benign_texts,
    heldout_benign_texts,
    is_loaded,
    with_carriers,
)


def test_same_seed_same_texts_other_seed_other_texts() -> None:
    a, b, c = benign_texts(200, seed=0), benign_texts(200, seed=0), benign_texts(200, seed=1)
    assert a == b
    assert len({t.text for t in a} & {t.text for t in c}) < 20


def test_every_generator_and_language_contributes() -> None:
    texts = benign_texts(600, seed=0)
    assert len({t.text for t in texts}) == 600
    gens = Counter(t.source.split(":")[0] for t in texts)
    langs = Counter(t.lang for t in texts)
    assert set(gens) == {"faker", "mimesis", "wordfreq"}, gens
    assert set(langs) == {"en", "ko", "zh"} and langs["en"] > 300, langs
    assert len({t.source for t in texts}) >= 25  # many kinds of text, not one template


def test_nothing_drawn_names_a_violation() -> None:
    texts = benign_texts(800, seed=3) + heldout_benign_texts(400, seed=3)
    assert not [t.text for t in texts if is_loaded(t.text)]
    assert is_loaded("Buy cocaine tonight") and is_loaded("fentanyl patches")
    assert is_loaded("codeine gummies")  # rare words of SynthMod's harmful phrases
    assert is_loaded("자살") and not is_loaded("Garden party at 3 pm")
    # Loaded words match with their inflections, not as prefixes of ordinary words: "bet" and
    # "meth" once kept "better", "between" and "method" out of every harmless text.
    for word in ("killing", "betting", "drugged", "enemies", "dangerous", "suicidal", "cigarette"):
        assert is_loaded(f"a {word} here"), word
    for word in ("better", "between", "method", "warm", "deadline", "diet", "pillow", "cashier"):
        assert not is_loaded(f"a {word} here"), word


def test_measuring_texts_use_other_locales_and_are_not_training_texts() -> None:
    train_locales = {(g, loc) for g, loc, _ in TRAIN_SOURCES}
    held_locales = {(g, loc) for g, loc, _ in HELDOUT_SOURCES}
    overlap = train_locales & held_locales
    assert overlap <= {("mimesis", "ko")}, overlap  # Korean: one locale in each library
    train = {t.text for t in benign_texts(2000, seed=0)}
    held = heldout_benign_texts(300, seed=0)
    assert sum(t.text in train for t in held) <= 3
    assert {t.source.split(":")[1] for t in held} >= {"en_GB", "en_AU", "zh_TW"}


def test_specs_render_as_harmless_samples_of_their_script() -> None:
    from training.synth import render_sample

    texts = benign_texts(12, seed=0)
    for spec, t in zip(benign_specs(texts, seed=0, size=224), texts, strict=True):
        image, rec = render_sample(spec)
        assert rec["labels"] == [] and rec["rendered_text"] and image.size == (224, 224)
        assert t.lang in spec.font.lower() or spec.lang == t.lang


def test_carriers_wrap_a_share_of_phrases_in_harmless_text_of_their_language() -> None:
    from training.synth import make_specs

    specs = [s for s in make_specs(400, seed=5, variants=["clean"]) if s.text]
    out = with_carriers(specs, 0.25, seed=0)
    assert out == with_carriers(specs, 0.25, seed=0)  # deterministic
    changed = [(a, b) for a, b in zip(specs, out, strict=True) if a.text != b.text]
    assert 0.15 * len(specs) < len(changed) < 0.35 * len(specs)
    pool = {t.text: t.lang for t in benign_texts(len(specs), 17)}  # the carriers' own draw
    for a, b in changed:
        assert b.labels == a.labels and a.text in b.text  # the phrase and its labels stay
        carrier = b.text.replace(a.text, "", 1).strip()
        assert pool.get(carrier) == a.lang, (a.text, b.text)
    assert with_carriers(specs, 0.0, seed=0) == specs


def test_phone_numbers_and_addresses_belong_to_a_named_business() -> None:
    # A phone number after "Hernandez-Ferrell" reads as a person's: the policy's privacy_pii,
    # not a harmless listing (the split turn's held-out rows flagged as privacy, issue 18).
    from training.benign import _COMPANY_WORD

    texts = benign_texts(1500, seed=0) + heldout_benign_texts(600, seed=0)
    listings = [t for t in texts if t.lang == "en" and ":business_" in t.source]
    assert len(listings) > 40
    unnamed = [t.text for t in listings if not _COMPANY_WORD.search(t.text)]
    assert not unnamed, unnamed[:5]
