"""Text-level adversarial transforms for SynthMod: leetspeak, homoglyphs, spacing, split words.

Each transform takes the phrase and a seeded `random.Random` and returns the text to draw; the
result always differs from its input when the input has anything the transform can change
(`TextTransformError` otherwise). Leetspeak and homoglyphs act on Latin letters only; spacing
and split words work on any script.

Used by `training.synth`; try it: `python -c "from training.synth_text import leetspeak; ..."`
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable

_LEET = {
    "a": "4@",
    "e": "3",
    "i": "1!",
    "o": "0",
    "s": "5$",
    "t": "7",
    "l": "1|",
    "g": "9",
    "b": "8",
    "z": "2",
}

# Look-alikes from other scripts: the same shape, a different code point (invisible to a reader,
# breaks keyword filters). Cyrillic and Greek glyphs in the DejaVu faces.
_UNICODE_LOOKALIKE = {
    "a": "\u0430",
    "c": "\u0441",
    "e": "\u0435",
    "i": "\u0456",
    "j": "\u0458",
    "o": "\u043e",
    "p": "\u0440",
    "s": "\u0455",
    "x": "\u0445",
    "y": "\u0443",
    "A": "\u0391",
    "B": "\u0392",
    "C": "\u0421",
    "E": "\u0415",
    "H": "\u041d",
    "K": "\u039a",
    "M": "\u041c",
    "O": "\u041e",
    "P": "\u0420",
    "T": "\u0422",
    "X": "\u0425",
}
# Confusables made of other ASCII letters: visible in pixels, easy to misread.
_VISUAL_LOOKALIKE = {"m": "rn", "w": "vv", "d": "cl", "l": "I", "O": "0", "I": "l", "k": "|<"}

_SEPARATORS = (" ", "-", ".", "_", "\n")
_CJK_SEPARATORS = (" ", "·", "\n", "/")


class TextTransformError(ValueError):
    """The phrase has nothing this transform can change (e.g. leetspeak on Hangul)."""


def _is_latin_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def is_cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK UNIFIED", "HANGUL"))


def leetspeak(text: str, rng: random.Random) -> str:
    """Swap letters for digits/symbols (free -> fr33), most eligible letters in a phrase."""
    spots = [i for i, ch in enumerate(text) if ch.lower() in _LEET]
    if not spots:
        raise TextTransformError("no Latin letters to write in leetspeak")
    rate = rng.uniform(0.5, 0.95)
    chosen = {i for i in spots if rng.random() < rate} or {rng.choice(spots)}
    out = list(text)
    for i in chosen:
        out[i] = rng.choice(_LEET[text[i].lower()])
    return "".join(out)


def homoglyph(text: str, rng: random.Random) -> str:
    """Swap letters for look-alikes: Cyrillic/Greek code points plus a few visible confusables."""
    invisible = [i for i, ch in enumerate(text) if ch in _UNICODE_LOOKALIKE]
    visible = [i for i, ch in enumerate(text) if ch in _VISUAL_LOOKALIKE]
    if not invisible and not visible:
        raise TextTransformError("no Latin letters with look-alikes")
    rate = rng.uniform(0.3, 0.7)
    swaps = {i: _UNICODE_LOOKALIKE[text[i]] for i in invisible if rng.random() < rate}
    # At least one visible swap, so the image differs as well as the code points.
    for i in rng.sample(visible, k=min(len(visible), rng.randint(1, 3))):
        swaps[i] = _VISUAL_LOOKALIKE[text[i]]
    if not swaps:
        i = rng.choice(invisible)
        swaps[i] = _UNICODE_LOOKALIKE[text[i]]
    return "".join(swaps.get(i, ch) for i, ch in enumerate(text))


def _words(text: str, min_len: int) -> list[re.Match[str]]:
    return [m for m in re.finditer(r"\S+", text) if sum(c.isalnum() for c in m.group()) >= min_len]


def spacing(text: str, rng: random.Random) -> str:
    """Letter-space a few words (free -> f r e e); in CJK, a run of characters."""
    cjk = [i for i, ch in enumerate(text) if is_cjk(ch)]
    if len(cjk) >= 4:
        start = rng.choice(cjk[: max(1, len(cjk) - 3)])
        end = min(len(text), start + rng.randint(4, 10))
        return text[:start] + " ".join(text[start:end]) + text[end:]
    words = _words(text, 3)
    if not words:
        raise TextTransformError("no word long enough to letter-space")
    gap = rng.choice((" ", " ", "  "))
    chosen = sorted(
        rng.sample(words, k=min(len(words), rng.randint(1, 3))), key=lambda m: m.start()
    )
    out, last = [], 0
    for m in chosen:
        out += [text[last : m.start()], gap.join(m.group())]
        last = m.end()
    return "".join(out) + text[last:]


def split_words(text: str, rng: random.Random) -> str:
    """Break words apart with a separator or a line break (telegram -> tele-gram, pass\\nword)."""
    cjk = [i for i, ch in enumerate(text) if is_cjk(ch) and i > 0 and is_cjk(text[i - 1])]
    if cjk:
        cuts = sorted(rng.sample(cjk, k=min(len(cjk), rng.randint(1, 3))))
        out, last = [], 0
        for i in cuts:
            out += [text[last:i], rng.choice(_CJK_SEPARATORS)]
            last = i
        return "".join(out) + text[last:]
    words = _words(text, 4)
    if not words:
        raise TextTransformError("no word long enough to split")
    chosen = sorted(
        rng.sample(words, k=min(len(words), rng.randint(1, 3))), key=lambda m: m.start()
    )
    out, last = [], 0
    for m in chosen:
        word = m.group()
        cut = rng.randint(2, len(word) - 2)
        out += [text[last : m.start()], word[:cut], rng.choice(_SEPARATORS), word[cut:]]
        last = m.end()
    return "".join(out) + text[last:]


TEXT_TRANSFORMS: dict[str, Callable[[str, random.Random], str]] = {
    "leetspeak": leetspeak,
    "homoglyph": homoglyph,
    "spacing": spacing,
    "split_words": split_words,
}
LATIN_ONLY = frozenset({"leetspeak", "homoglyph"})


# --- evasion families for the reader (issue 18) -----------------------------------------------
# Not in TEXT_TRANSFORMS: SynthMod's default mix and seeds stay as they were. Tests and benches
# call them directly; each changes Latin words only and raises TextTransformError otherwise.

_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060")
_MULTI = {"k": "|<", "w": "vv", "a": "/\\", "o": "()", "h": "|-|"}
_SPELL_SEPARATORS = (".", "-", "_", "*", " ")


def _latin_words(text: str, min_len: int) -> list[re.Match[str]]:
    return [m for m in re.finditer(r"[A-Za-z]+", text) if len(m.group()) >= min_len]


def _rewrite(
    text: str, rng: random.Random, min_len: int, how: Callable[[str, random.Random], str]
) -> str:
    words = _latin_words(text, min_len)
    if not words:
        raise TextTransformError(f"no Latin word of {min_len}+ letters")
    chosen = sorted(
        rng.sample(words, k=min(len(words), rng.randint(1, 3))), key=lambda m: m.start()
    )
    out, last = [], 0
    for m in chosen:
        out += [text[last : m.start()], how(m.group(), rng)]
        last = m.end()
    return "".join(out) + text[last:]


def spelled_out(text: str, rng: random.Random) -> str:
    """Spell a few words letter by letter with one separator (free -> f.r.e.e, f r e e)."""
    return _rewrite(text, rng, 4, lambda w, r: r.choice(_SPELL_SEPARATORS).join(w))


def zero_width(text: str, rng: random.Random) -> str:
    """Hide zero-width characters between the letters of a few words (invisible in pixels)."""
    return _rewrite(text, rng, 3, lambda w, r: r.choice(_ZERO_WIDTH).join(w))


def inserted_symbol(text: str, rng: random.Random) -> str:
    """Put one symbol inside a few words (cocaine -> coc.aine, coc*aine)."""

    def cut(w: str, r: random.Random) -> str:
        k = r.randint(2, len(w) - 2)
        return w[:k] + r.choice(".-_*") + w[k:]

    return _rewrite(text, rng, 5, cut)


def multi_character(text: str, rng: random.Random) -> str:
    """Draw letters with several characters (k -> |<, w -> vv, a -> /\\, o -> (), h -> |-|)."""
    spots = [i for i, ch in enumerate(text) if ch in _MULTI]
    if not spots:
        raise TextTransformError("no letter with a multi-character form")
    rate = rng.uniform(0.5, 0.9)
    chosen = {i for i in spots if rng.random() < rate} or {rng.choice(spots)}
    return "".join(_MULTI[ch] if i in chosen else ch for i, ch in enumerate(text))


def mixed_script(text: str, rng: random.Random) -> str:
    """Swap Latin letters inside words for Cyrillic/Greek look-alikes only (no visible swap)."""
    spots = [i for i, ch in enumerate(text) if ch in _UNICODE_LOOKALIKE]
    if not spots:
        raise TextTransformError("no Latin letters with look-alikes")
    rate = rng.uniform(0.3, 0.7)
    chosen = {i for i in spots if rng.random() < rate} or {rng.choice(spots)}
    return "".join(_UNICODE_LOOKALIKE[ch] if i in chosen else ch for i, ch in enumerate(text))


EVASION_TRANSFORMS: dict[str, Callable[[str, random.Random], str]] = {
    "spelled_out": spelled_out,
    "zero_width": zero_width,
    "inserted_symbol": inserted_symbol,
    "multi_character": multi_character,
    "mixed_script": mixed_script,
}
