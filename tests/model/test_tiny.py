"""Tiny offline VLMs: real architectures, deterministic, reload through the Auto classes."""

from __future__ import annotations

import hashlib

import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from model import prompts
from model.scoring import answer_token_ids, render_prompt_parts
from model.tiny import make_tiny
from tests.model.conftest import ALL_ARCHS, noise_image


def _weights_hash(path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_tiny_reloads_with_auto_classes_and_sees_the_image(arch, tiny_model_dir, policy):
    path = tiny_model_dir(arch)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    parts = render_prompt_parts(processor, policy, text="hi", ocr_text="WIN")
    enc = processor(
        text=[parts.prefix + parts.suffixes[0]], images=[[noise_image(0)]], return_tensors="pt"
    )
    image_id = model.config.image_token_id if hasattr(model.config, "image_token_id") else None
    n_image_tokens = int((enc["input_ids"] == image_id).sum())
    assert n_image_tokens >= 49  # the image became many placeholder tokens, not one
    out = model(**enc, logits_to_keep=1)
    assert out.logits.shape[-1] == len(processor.tokenizer)


@pytest.mark.parametrize("arch", ["internvl", "qwen2vl"])
def test_same_seed_same_model_other_seed_other_weights(arch, tiny_model_dir, tmp_path):
    again = make_tiny(tmp_path / "again", arch, seed=0)
    assert _weights_hash(again) == _weights_hash(tiny_model_dir(arch, 0))
    assert (again / "tokenizer.json").read_bytes() == (
        tiny_model_dir(arch, 0) / "tokenizer.json"
    ).read_bytes()
    other = make_tiny(tmp_path / "other", arch, seed=1)
    assert _weights_hash(other) != _weights_hash(again)


def test_answer_words_and_json_are_short_in_the_tiny_tokenizer(tiny_internvl):
    tok = AutoProcessor.from_pretrained(tiny_internvl).tokenizer
    yes, no = answer_token_ids(tok)
    assert yes != no
    for word in (prompts.ANSWER_YES, prompts.ANSWER_NO, " Yes", " No"):
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1
    assert len(tok('{"categories": ["scam_fraud"]', add_special_tokens=False)["input_ids"]) <= 12


def test_unknown_arch_is_a_user_error(tmp_path):
    from storage.errors import WardenError

    with pytest.raises(WardenError, match="unknown tiny architecture"):
        make_tiny(tmp_path / "x", "gpt5")  # type: ignore[arg-type]


def test_extra_corpus_turns_content_words_into_tokens(tmp_path):
    words = "cocaine worthless giveaway"
    plain = AutoProcessor.from_pretrained(make_tiny(tmp_path / "plain", "internvl")).tokenizer
    rich_dir = make_tiny(
        tmp_path / "rich", "internvl", extra_corpus=[f"{words} {words}"] * 50, vocab_size=1024
    )
    rich = AutoProcessor.from_pretrained(rich_dir).tokenizer
    assert len(plain) <= 768 < len(rich) <= 1024  # BPE stops when merges run out
    assert len(rich(words, add_special_tokens=False)["input_ids"]) == 3
    assert len(plain(words, add_special_tokens=False)["input_ids"]) > 3
    assert len(rich(" Yes", add_special_tokens=False)["input_ids"]) == 1
    # The scorer's prompt still renders and the answer ids are unchanged in kind.
    yes, no = answer_token_ids(rich)
    assert rich.decode([yes]) == prompts.ANSWER_YES and rich.decode([no]) == prompts.ANSWER_NO


def test_split_digits_gives_one_token_per_digit_and_round_trips(tmp_path):
    corpus = ["call 555 0100 or 2024 at 148 main st, $120 each"] * 50
    grouped = AutoProcessor.from_pretrained(
        make_tiny(tmp_path / "g", "internvl", extra_corpus=corpus)
    ).tokenizer
    single = AutoProcessor.from_pretrained(
        make_tiny(tmp_path / "s", "internvl", extra_corpus=corpus, split_digits=True)
    ).tokenizer
    text = "M1cr0d053, l4b 73$73d: call 555 0100"
    pieces = single.convert_ids_to_tokens(single(text, add_special_tokens=False)["input_ids"])
    digits = [p for p in pieces if any(ch.isdigit() for ch in p)]
    assert digits and all(len(p.lstrip("Ġ")) == 1 for p in digits), pieces
    assert any(
        len(p.lstrip("Ġ")) > 1 and p.lstrip("Ġ").isdigit()
        for p in grouped.convert_ids_to_tokens(grouped(text, add_special_tokens=False)["input_ids"])
    )
    assert single.decode(single(text, add_special_tokens=False)["input_ids"]) == text
    assert len(single(" Yes", add_special_tokens=False)["input_ids"]) == 1
