"""Learning a writing's character channel from corrected items (for `model.reading`).

A new way of writing (leetspeak "fr33 m0n3y", look-alike letters, an OCR engine's habits)
reaches the analysts as a run of corrections. A few hundred corrections cover few of the
phrases the same writing will be used on, and a model post-trained on them learns the corrected
phrases more than the writing (bench/loop.py: +13 points of leetspeak recall from 300). What
the corrections do show is the writing's *character channel*, P(observed | intended), and that
carries to every phrase:

1. The corrected items' words that no reference text contains ("m1cr0d053") are aligned with
   reference words of the same length under the current channel (a noisy-channel decoder:
   the best-scoring word, kept only when it wins by a margin).
2. The aligned pairs are counted into a new channel (hard EM; a few rounds). Identity counts
   come from the same items' known words, so the rates are per character, not per word.
3. Swaps of a letter seen in fewer than `min_count` distinct words or with a probability under
   `min_prob` are dropped: everyday OCR noise stays out, and a batch of ordinary corrections
   yields an empty channel.

It uses nothing but the corrected OCR text and the reference text (the replay data's, which
is plain writing by construction of `model.reading.is_plain_word`); no table of look-alikes is
built in. Both are normalised first (`model.normalise`: NFKC, TR39 look-alikes, split words), so
the channel learns only what normalisation does not undo. It learns one-for-one swaps and
one-for-several (`model.reading.MULTI_UNITS`: "|<" for k, "vv" for w).

A reader must be sure or silent. A swap is kept only with enough evidence: `min_count`
distinct aligned words AND `min_items` distinct corrected items behind it, and a likelihood-
ratio (G) test of the swap against "no channel" (the letters behind that character are the
background letters of the aligned words) of at least `min_g`. `safe_reader` then applies the
reader to plain text (the replay text, and any held-out benign text) and drops swaps until it
changes no plain word, or yields no reader. `training.dataset.build_dataset` runs both and
writes the reader beside the dataset; `bench/reader.py` measures the thresholds.

Try it:
    python -c "from training.substitutions import estimate_channel as e; \
print(e(['fr33 m0n3y n0w'] * 9, ['free money now', 'call now'], min_count=1).summary())"
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model.normalise import normalise_text
from model.reading import (
    _EDGE_PUNCT,
    Channel,
    Reader,
    collapse_units,
    lexicon_of,
    unit_text,
    words_of,
)

# G of a swap against "no channel". chi-square(1) puts p = 1e-5 at 20 (~1,000 candidate pairs:
# family-wise p < 0.01); measured (bench/reader.py): the strongest candidate that corrections
# with no swaps offer reaches 25 with normalisation off (11 with it on), while every SynthMod
# leetspeak swap learnt from 30 corrected items reaches 35 (300 items: 320). 30 sits between.
MIN_G = 30.0


@dataclass
class Evidence:
    """Why each candidate swap was kept or refused, for the dataset card."""

    kept: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"kept": self.kept[:32], "refused": self.refused[:32]}


def g_statistic(k: float, n: float, p0: float) -> float:
    """G = 2 log LR of "k of the n letters behind this character are c" against "c turns up
    there at its background rate p0" (binomial; 0 when k/n is not above p0)."""
    if n <= 0 or k <= 0 or not 0 < p0 < 1 or k / n <= p0:
        return 0.0
    g = k * math.log(k / (n * p0))
    if n > k:
        g += (n - k) * math.log((n - k) / (n * (1 - p0)))
    return 2.0 * g


def estimate_channel(
    observed: Iterable[str],
    reference: Iterable[str],
    *,
    min_count: int = 5,
    min_items: int = 3,
    min_g: float = MIN_G,
    min_prob: float = 0.1,
    rounds: int = 4,
    margin: float = math.log(4.0),
    affected_share: float = 0.2,
    max_words: int = 5000,
    evidence: Evidence | None = None,
    normalise: bool = True,
) -> Channel:
    """Estimate the character channel of the `observed` texts against clean `reference` texts.

    `observed`: the corrected items' OCR text. `reference`: text known to be written plainly
    (the replay set's). An observed text counts as showing the writing when at least
    `affected_share` of its words (of `MIN_WORD`+ characters) are unknown to the reference.
    The `max_words` most frequent unknown words are enough to estimate from; the cost is
    their count times the lexicon's, per round (0.5 s for 1,500 x 3,000 here). Swaps need
    `min_count` distinct words, `min_items` distinct items and a G statistic of `min_g`
    (`g_statistic`); `evidence`, when given, is filled with what was kept and refused.
    `normalise=False` skips `model.normalise` (only to measure what it is worth).
    """
    norm = normalise_text if normalise else (lambda t: t)
    lexicon = lexicon_of(norm(t or "") for t in reference)
    unknown: Counter[str] = Counter()
    known: Counter[str] = Counter()
    items_of: dict[str, set[int]] = {}
    n_affected = 0
    for text in observed:
        words = [collapse_units(w) for w in words_of(norm(text or ""))]
        # Numbers are never read as words, so they are no evidence either.
        new = [w for w in words if w not in lexicon and any(c.isalpha() for c in w)]
        if not words or len(new) < affected_share * len(words):
            continue
        n_affected += 1
        unknown.update(new)
        for w in new:
            items_of.setdefault(w, set()).add(n_affected)
        known.update(w for w in words if w in lexicon)
    if not unknown or not lexicon:
        return Channel(unknown_words=len(unknown), affected_items=n_affected)
    n_unknown = len(unknown)
    unknown = Counter(dict(unknown.most_common(max_words)))

    alphabet = sorted({c for w in list(lexicon) + list(unknown) for c in w})
    index = {c: i for i, c in enumerate(alphabet)}
    size = len(alphabet)
    by_len: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for length in {len(w) for w in unknown}:
        cands = [w for w in lexicon if len(w) == length]
        if cands:
            codes = np.array([[index[c] for c in w] for w in cands], dtype=np.int64)
            prior = np.log(np.array([lexicon[w] for w in cands], dtype=np.float64))
            by_len[length] = (codes, 0.1 * prior)  # frequency breaks near-ties only
    identity = np.zeros(size)
    for w, m in known.items():
        for c in w:
            identity[index[c]] += m

    # Start: a character is read as itself with probability 0.9.
    log_p = np.full((size, size), math.log(0.1 / max(1, size - 1)))  # [observed, intended]
    np.fill_diagonal(log_p, math.log(0.9))
    explained = math.log(0.02)
    counts = support = positions = np.zeros((size, size))
    pair_items: dict[tuple[int, int], set[int]] = {}
    aligned = 0
    for round_ in range(rounds):
        counts = np.zeros((size, size))
        counts[np.arange(size), np.arange(size)] = identity
        support = np.zeros((size, size))  # distinct words behind each pair
        positions = np.zeros((size, size))  # aligned positions, each distinct word once
        pair_items = {}
        aligned = 0
        for word, m in unknown.items():
            if len(word) not in by_len:
                continue
            codes, prior = by_len[len(word)]
            obs = np.array([index[c] for c in word])
            scores = log_p[obs[None, :], codes].sum(axis=1) + prior
            best = int(np.argmax(scores))
            if len(scores) > 1:
                second = np.partition(scores, -2)[-2]
                if scores[best] - second < margin:
                    continue
            target = codes[best]
            # The first round trusts only words that keep a third of their letters; later
            # rounds only alignments whose every difference the channel so far explains (an
            # ID or a handle lined up with a word is noise, not a way of writing).
            if round_ == 0:
                if (target == obs).sum() * 3 < len(word):
                    continue
            elif (log_p[obs, target] < explained).any():
                continue
            np.add.at(counts, (obs, target), m)
            support[obs, target] = support[obs, target] + 1
            np.add.at(positions, (obs, target), 1)
            for o, t in set(zip(obs.tolist(), target.tolist(), strict=True)):
                if o != t:
                    pair_items.setdefault((o, t), set()).update(items_of.get(word, ()))
            aligned += 1
        total = counts.sum(axis=0)  # per intended character
        probs = (counts + 1e-3) / (total[None, :] + 1e-3 * size)
        log_p = np.log(probs)

    total = counts.sum(axis=0)
    background = positions.sum(axis=0) / max(1.0, positions.sum())  # intended letters
    subs: dict[str, dict[str, float]] = {}
    for j, intended in enumerate(alphabet):
        # Cased letters only (Latin, Cyrillic, Greek...): digits and punctuation are what the
        # writing swaps *in*, and a number read as a word would be a misreading.
        if total[j] == 0 or not intended.isalpha() or intended.upper() == intended:
            continue
        for i, obs_ch in enumerate(alphabet):
            if i == j or support[i, j] < 2:
                continue
            p = counts[i, j] / total[j]
            n_items = len(pair_items.get((i, j), ()))
            g = g_statistic(positions[i, j], positions[i].sum(), background[j])
            row = {
                "intended": intended,
                "observed": unit_text(obs_ch),
                "p": round(float(p), 3),
                "words": int(support[i, j]),
                "items": n_items,
                "g": round(float(g), 1),
            }
            why = [
                f"{int(support[i, j])} words < {min_count}" if support[i, j] < min_count else "",
                f"{n_items} items < {min_items}" if n_items < min_items else "",
                f"G {g:.1f} < {min_g:g}" if g < min_g else "",
                f"p {p:.2f} < {min_prob:g}" if p < min_prob else "",
            ]
            why = [w for w in why if w]
            if not why:
                subs.setdefault(intended, {})[unit_text(obs_ch)] = float(p)
                if evidence is not None:
                    evidence.kept.append(row)
            elif evidence is not None and p >= min_prob / 2:
                evidence.refused.append(row | {"why": "; ".join(why)})
    return Channel(
        subs=subs, aligned_words=aligned, unknown_words=n_unknown, affected_items=n_affected
    )


# --- the final check: a reader never changes plain text ---------------------------------------

_PLAIN_TOKEN = re.compile(r"[^\W\d_]+(?:['.\-][^\W\d_]+)*\.?|[\d.,:/\-]+")


def plain_tokens(texts: Iterable[str]) -> Counter[str]:
    """Tokens of `texts` written plainly: letters of one script (with inner ' . -, as "a.m."
    or "h.i.s"), or numbers. Leetspeak ("fr33", "f@st") and mixed scripts are not plain."""
    out: Counter[str] = Counter()
    for text in texts:
        for tok in normalise_text(text or "").split():
            core = tok.strip(_EDGE_PUNCT)
            if _PLAIN_TOKEN.fullmatch(core) and len({c.isascii() for c in core if c.isalpha()}) < 2:
                out[core] += 1
    return out


def _swaps_used(raw: str, read: str) -> list[tuple[str, str]]:
    obs = collapse_units(raw.lower())
    return [(r, unit_text(o)) for o, r in zip(obs, read.lower(), strict=False) if o != r]


def safe_reader(
    channel: Channel,
    lexicon: Mapping[str, int],
    plain_texts: Iterable[str],
    evidence: Evidence | None = None,
) -> Reader | None:
    """The reader of `channel` over `lexicon`, with the swaps that change any plain word of
    `plain_texts` dropped (the most-blamed first, one at a time); None when no swap is left."""
    tokens = plain_tokens(plain_texts)
    subs = {c: dict(obs) for c, obs in channel.subs.items()}
    while subs:
        reader = Reader(
            Channel(subs, channel.aligned_words, channel.unknown_words, channel.affected_items),
            lexicon,
        )
        blame: Counter[tuple[str, str]] = Counter()
        examples: dict[tuple[str, str], str] = {}
        for tok in tokens:
            read = reader.decode_word(tok.lower())
            if read is None:
                continue
            for pair in _swaps_used(tok, read):
                if pair[1] in subs.get(pair[0], {}):
                    blame[pair] += 1
                    examples.setdefault(pair, f"{tok} → {read}")
        if not blame:
            return reader
        (c, o), n = blame.most_common(1)[0]
        del subs[c][o]
        if not subs[c]:
            del subs[c]
        if evidence is not None:
            evidence.kept = [k for k in evidence.kept if (k["intended"], k["observed"]) != (c, o)]
            why = f"changes {n} plain words ({examples[(c, o)]})"
            evidence.refused.append({"intended": c, "observed": o, "why": why})
    return None
