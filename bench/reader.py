"""Is the reader sure or silent? Text-only figures for issue 18 (seconds on a CPU).

1. Corrections with no real swaps (ordinary SynthMod corrections, dot-inserted text, 2% OCR
   noise) learn a reader: how many words of held-out benign text written by Faker (en_US
   sentences, addresses, slogans, names with prices and dates) does it change? Beside it, the
   same learner with the evidence rules off (min_items 1, no G test, no plain-text check:
   no normalisation: the learner as it was before issue 18). The benign set also holds the
   issue's own strings ("h.i.s", "at 9 a.m.").
2. Evasions written by this file's own renderer (not SynthMod's): one-for-one swaps (t→+,
   e→€, s→§, l→£, o→ø, a→α), multi-character letters (k→|<, w→vv, a→/\\, o→()), and splits
   (f.r.e.e, f r e e, zero-width characters, a separator inside a word), Cyrillic look-alikes.
   A reader is learnt from 300 corrections in the writing (swaps) or none is needed
   (normalisation); on held-out harmful SynthMod phrases written the same way: harmful words
   that match their plain form in the raw text vs the read text; on Faker text written the
   same way: words the reader turned into something that is neither the original nor the raw.
3. The evidence thresholds: G and item counts of the swaps kept for real writings (and of
   SynthMod leetspeak learnt from 15, 30, 60, 300 items) beside the
   strongest candidate the no-swap corrections offer.

Run: .venv/bin/python bench/reader.py [--results PATH]   (writes bench/results/reader.json)
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import provenance  # noqa: E402

RESULTS_NAME = "reader.json"
ONE_FOR_ONE = {"t": "+", "e": "€", "s": "§", "l": "£", "o": "ø", "a": "α"}
MULTI = {"k": "|<", "w": "vv", "a": "/\\", "o": "()"}
CYRILLIC = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440"}


def _swap_writer(table: dict[str, str], rate: float) -> Callable[[str, random.Random], str]:
    def write(text: str, rng: random.Random) -> str:
        return "".join(
            table[c] if c in table and rng.random() < rate else c for c in text
        )  # lower-case letters only: capitals stay

    return write


def _split_writer(text: str, rng: random.Random) -> str:
    out = []
    for w in text.split(" "):
        if len(w) >= 4 and w.isalpha() and rng.random() < 0.6:
            kind = rng.choice(("dots", "spaces", "zw", "inner"))
            if kind == "dots":
                w = rng.choice(".-_*").join(w)
            elif kind == "spaces":
                w = " ".join(w)
            elif kind == "zw":
                w = "\u200b".join(w)
            else:
                k = rng.randint(2, len(w) - 2)
                w = w[:k] + rng.choice(".-_") + w[k:]
        out.append(w)
    return " ".join(out)


def _texts(n: int, seed: int, harmful: bool | None = None) -> list[str]:
    from training.synth import make_specs

    out = []
    for s in make_specs(n, seed, variants=["clean"], size=96):
        if s.lang != "en" or not s.text:
            continue
        if harmful is None or bool(s.labels) == harmful:
            out.append(s.text)
    return out


def _faker(n: int, seed: int) -> list[str]:
    from faker import Faker

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


def _words(text: str) -> list[str]:
    from model.reading import words_of

    return words_of(text)


def _changed_words(reader, texts: Sequence[str]) -> tuple[int, int, int, list[str]]:
    """(words changed, texts changed, words in all, examples) when `reader` reads `texts`."""
    words = texts_changed = total = 0
    examples = []
    for t in texts:
        read = reader.read(t) if reader is not None else t
        total += len(t.split())
        if read != t:
            texts_changed += 1
            diff = sum((Counter(t.split()) - Counter(read.split())).values())
            words += max(1, diff)
            if len(examples) < 5:
                examples.append(f"{t!r} → {read!r}")
    return words, texts_changed, total, examples


def _raw_reader():
    from model.reading import Reader

    class Raw(Reader):
        """The reader as it was before issue 18: the channel alone, no normalisation."""

        def read(self, text: str) -> str:
            return self.read_channel(text)

    return Raw


def _learn(observed, reference, lexicon, *, strict: bool = True):
    from training.substitutions import Evidence, estimate_channel, safe_reader

    _Raw = _raw_reader()  # noqa: N806
    ev = Evidence()
    if strict:
        ch = estimate_channel(observed, reference, evidence=ev)
        reader = safe_reader(ch, lexicon, reference, ev) if not ch.empty else None
    else:
        ch = estimate_channel(
            observed, reference, min_items=1, min_g=0.0, evidence=ev, normalise=False
        )
        reader = _Raw(ch, lexicon) if not ch.empty else None
    return reader, ev


def _dotted(texts: list[str], rng: random.Random) -> list[str]:
    out = []
    for t in texts:
        ws = []
        for w in t.split():
            if len(w) >= 4 and rng.random() < 0.7:
                k = rng.randint(1, len(w) - 1)
                w = f"{w[:k]}.{w[k:]}"
            ws.append(w)
        out.append(" ".join(ws))
    return out


def _restore(reader, written: Callable[[str, random.Random], str], harmful, benign, seed: int):
    from model.normalise import normalise_text

    read = reader.read if reader is not None else normalise_text
    rng = random.Random(seed)
    target = raw_ok = read_ok = 0
    for phrase in harmful:
        raw = written(phrase, rng)
        want = Counter(w for w in _words(phrase) if w not in _words(raw))  # words it hid
        target += sum(want.values())
        raw_ok += sum((want & Counter(_words(raw))).values())
        read_ok += sum((want & Counter(_words(read(raw)))).values())
    wrong = total = 0
    examples = []
    for text in benign:
        raw = written(text, rng)
        out = read(raw)
        total += len(_words(text))
        # Wrong: a plain word (ASCII letters) that is neither the original nor the raw token;
        # a token left partly unread ("bαckgrøund" → "backgrøund") is unread, not wrong.
        bad = Counter(w for w in _words(out) if w.isascii() and w.replace("-", "").isalpha())
        bad = bad - Counter(_words(text)) - Counter(_words(raw))
        wrong += sum(bad.values())
        if bad and len(examples) < 5:
            examples.append(f"{raw!r} → {out!r}")
    return {
        "harmful_words_hidden": target,
        "restored_raw": raw_ok,
        "restored_read": read_ok,
        "benign_words": total,
        "benign_words_changed_wrongly": wrong,
        "benign_examples": examples,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=None, help="results file or folder")
    a = p.parse_args(argv)
    out_path = provenance.results_or_exit(p, a.results, RESULTS_NAME)
    prov = provenance.start(__file__, argv)

    from model.reading import MIN_WORD, lexicon_of
    from training.lexicon import english_words
    from training.substitutions import MIN_G
    from training.synth_text import leetspeak

    reference = _texts(400, 1)
    lexicon = lexicon_of(reference)
    for w in english_words(min_len=MIN_WORD):
        lexicon.setdefault(w, 1)
    benign = [*_faker(100, 7), "h.i.s", "at 9 a.m.", "Call h.i.s office at 9 a.m. or 5 p.m."]
    fresh = _texts(400, 2)
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    noisy = ["".join(rng.choice(letters) if rng.random() < 0.02 else c for c in t) for t in fresh]
    no_swaps = {
        "ordinary": fresh[:300],
        "dot_inserted_80": _dotted(fresh[:80], random.Random(0)),
        "dot_inserted_300": _dotted(fresh[:300], random.Random(1)),
        "ocr_noise_2pct": noisy[:300],
    }
    part1: dict[str, dict] = {}
    strongest: dict[str, dict] = {}
    for name, observed in no_swaps.items():
        row = {}
        for strict in (True, False):
            reader, ev = _learn(observed, reference, lexicon, strict=strict)
            words, texts, total, examples = _changed_words(reader, benign)
            row["strict" if strict else "rules_off"] = {
                "swaps": reader.channel.summary(8) if reader is not None else [],
                "benign_words_changed": words,
                "benign_texts_changed": texts,
                "benign_texts": len(benign),
                "benign_words": total,
                "examples": examples,
            }
            if not strict:
                cands = sorted(ev.kept + ev.refused, key=lambda r: -r.get("g", 0))[:1]
                strongest[name] = cands[0] if cands else {}
        part1[name] = row

    held_harmful = _texts(600, 5, harmful=True)[:200]
    held_benign = _faker(50, 11)
    writings = {
        "one_for_one": _swap_writer(ONE_FOR_ONE, 0.7),
        "multi_character": _swap_writer(MULTI, 0.7),
        "cyrillic_lookalikes": _swap_writer(CYRILLIC, 0.6),
        "splits_separators": _split_writer,
        "leetspeak_synthmod": leetspeak,
    }
    part2: dict[str, dict] = {}
    kept_evidence: dict[str, list] = {}
    for name, write in writings.items():
        wrng = random.Random(3)
        observed = [write(t, wrng) for t in fresh[:300]]
        reader, ev = _learn(observed, reference, lexicon)
        part2[name] = {
            "swaps_kept": reader.channel.summary(16) if reader is not None else [],
            "swaps_refused": ev.refused[:8],
        } | _restore(reader, write, held_harmful, held_benign, seed=9)
        plain = _changed_words(reader, held_benign)
        part2[name]["plain_benign_words_changed"] = plain[0]
        kept_evidence[name] = [
            {k: r[k] for k in ("intended", "observed", "words", "items", "g")} for r in ev.kept
        ]

    from training.substitutions import Evidence, estimate_channel

    by_items = {}
    lrng = random.Random(3)
    for n in (15, 30, 60, 300):
        ev = Evidence()
        observed = [leetspeak(t, lrng) for t in fresh[:n]]
        estimate_channel(observed, reference, min_g=0.0, evidence=ev)
        by_items[n] = {
            "swaps": len(ev.kept),
            "min_g": min((r["g"] for r in ev.kept), default=None),
        }

    min_kept_g = min((r["g"] for rows in kept_evidence.values() for r in rows), default=None)
    min_kept_items = min(
        (r["items"] for rows in kept_evidence.values() for r in rows), default=None
    )
    payload = {
        "what": "issue 18: a reader that is sure or silent; normalisation before the channel",
        "benign_heldout": "Faker en_US (seed 7: 400 texts + the issue's 3; seed 11: 200)",
        "no_real_swaps": part1,
        "evasions_own_renderer": part2,
        "thresholds": {
            "min_words": 5,
            "min_items": 3,
            "min_g": MIN_G,
            "leetspeak_swaps_and_min_g_by_items": by_items,
            "kept_swaps_evidence": kept_evidence,
            "min_g_of_kept_swaps": min_kept_g,
            "min_items_of_kept_swaps": min_kept_items,
            "strongest_no_swap_candidate_rules_off": strongest,
        },
    }
    provenance.write_results(out_path, payload, prov)
    print(f"wrote {out_path}")
    for name, row in part1.items():
        on, off = row["strict"], row["rules_off"]
        print(
            f"{name}: strict {on['benign_words_changed']} words / "
            f"{on['benign_texts_changed']} texts changed; rules off "
            f"{off['benign_words_changed']} / {off['benign_texts_changed']}"
        )
    for name, row in part2.items():
        print(
            f"{name}: restored {row['restored_read']}/{row['harmful_words_hidden']} "
            f"(raw {row['restored_raw']}); benign wrong {row['benign_words_changed_wrongly']}"
            f"/{row['benign_words']}; plain benign changed {row['plain_benign_words_changed']}"
        )
    print(f"leetspeak by items: {by_items}")
    print(f"min G kept {min_kept_g}, min items kept {min_kept_items}; strongest {strongest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
