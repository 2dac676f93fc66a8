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
built in. It learns one-for-one character swaps, not split words or inserted characters.
`training.dataset.build_dataset` runs it and writes the reader it yields beside the dataset.

Try it:
    python -c "from training.substitutions import estimate_channel as e; \
print(e(['fr33 m0n3y n0w'] * 9, ['free money now', 'call now'], min_count=1).summary())"
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np

from model.reading import Channel, lexicon_of, words_of


def estimate_channel(
    observed: Iterable[str],
    reference: Iterable[str],
    *,
    min_count: int = 5,
    min_prob: float = 0.1,
    rounds: int = 4,
    margin: float = math.log(4.0),
    affected_share: float = 0.2,
    max_words: int = 5000,
) -> Channel:
    """Estimate the character channel of the `observed` texts against clean `reference` texts.

    `observed`: the corrected items' OCR text. `reference`: text known to be written plainly
    (the replay set's). An observed text counts as showing the writing when at least
    `affected_share` of its words (of `MIN_WORD`+ characters) are unknown to the reference.
    The `max_words` most frequent unknown words are enough to estimate from; the cost is
    their count times the lexicon's, per round (0.5 s for 1,500 x 3,000 here).
    """
    lexicon = lexicon_of(reference)
    unknown: Counter[str] = Counter()
    known: Counter[str] = Counter()
    n_affected = 0
    for text in observed:
        words = words_of(text)
        new = [w for w in words if w not in lexicon]
        if not words or len(new) < affected_share * len(words):
            continue
        n_affected += 1
        unknown.update(new)
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
    counts = support = np.zeros((size, size))
    aligned = 0
    for round_ in range(rounds):
        counts = np.zeros((size, size))
        counts[np.arange(size), np.arange(size)] = identity
        support = np.zeros((size, size))  # distinct words behind each pair
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
            aligned += 1
        total = counts.sum(axis=0)  # per intended character
        probs = (counts + 1e-3) / (total[None, :] + 1e-3 * size)
        log_p = np.log(probs)

    total = counts.sum(axis=0)
    subs: dict[str, dict[str, float]] = {}
    for j, intended in enumerate(alphabet):
        # Cased letters only (Latin, Cyrillic, Greek...): digits and punctuation are what the
        # writing swaps *in*, and a number read as a word would be a misreading.
        if total[j] == 0 or not intended.isalpha() or intended.upper() == intended:
            continue
        for i, obs_ch in enumerate(alphabet):
            if i == j or support[i, j] < min_count:
                continue
            p = counts[i, j] / total[j]
            if p >= min_prob:
                subs.setdefault(intended, {})[obs_ch] = float(p)
    return Channel(
        subs=subs, aligned_words=aligned, unknown_words=n_unknown, affected_items=n_affected
    )
