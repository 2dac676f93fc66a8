"""Text normalisation before the learnt reader: NFKC, look-alike folding, split repair.

Evasive writing that needs no learning is undone here, in a fixed order, before the learnt
character channel (`model.reading`) sees the text:

1. NFKC (fullwidth "ｆｒｅｅ", ligatures, compatibility forms), on tokens holding no CJK or
   Hangul character: Chinese and Korean text keeps its fullwidth punctuation as written.
2. Look-alike folding by the Unicode TR39 confusables table (`confusable-homoglyphs`): a
   non-ASCII letter whose skeleton is one ASCII letter is folded when the rest of its word is
   Latin ("lеaked" with a Cyrillic е), or when the whole word folds to a known English word in
   a text that is mostly Latin. A Cyrillic, Greek, Korean or Chinese word is left as it is.
3. Separator and split repair, driven by the word counts of `wordsegment`: zero-width
   characters between Latin letters go; "f.r.e.e", "f-r-e-e" and "f r e e" (letters one by one,
   4+ of them) become "free" when the joined form is an English word (or a few of them:
   "f r e e m o n e y" → "free money"); "coc.aine" or "coc aine" become "cocaine" when the
   joined form is a word, the pieces are not all words themselves, and the join is at least
   `JOIN_ODDS` times likelier than the pieces. Short dotted letters stay: "h.i.s", "a.m.".
   Letters spelt out one by one (4+ of them) are not how plain text is written, so they are
   read whatever they spell: split into the likeliest run of words wordfreq knows
   ("o x y c o d o n e" → "oxycodone", "u n t r a c e a b l e r i f l e" → "untraceable
   rifle"), or kept as one word. "*", "~" and "·" between letters are dropped whatever the
   word ("Kramer*ville", "num·ber"), and underscores when the joined word is one wordfreq or
   wordsegment knows ("invest_ment", "bitc_oin"; "snake_case" stays).

`normalise` returns the text and what it did (`Changes`), for a dataset card. Raw text is what
is stored; this is what the model reads.

Try it: python -c "from model.normalise import normalise; print(normalise('f.r.e.e lеaked'))"
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

WORD_COUNT = 1_000_000  # a wordsegment unigram this common (26k words) is an English word
RARE_WORD_COUNT = 100_000  # (99k words) enough for a word broken by a symbol no word holds
JOIN_ODDS = 1000.0  # how much likelier a joined word must be than its pieces as separate words
MIN_SPELLED = 4  # letters spelt one by one shorter than this are initialisms: "h.i.s", "a.m."
_LONGEST_WORD = 24  # longest word `_spelt` tries
_LONGEST_RUN = 240  # longest spelt-out run `_spelt` splits into words (cost ~ run x word)
_SMALL_WORDS = frozenset(
    "a i am an as at be by do go he hi if in is it me my no of oh ok on or so to up us we".split()
)
# Zero-width and soft characters dropped between Latin letters.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
# What writers put between letters to break a word. Not | ( ) / \ < $ @ ! + : those write
# letters themselves ("|<" k, "/\" a, "+" t) and are the learnt channel's to read.
_SEPARATORS = ".-_*·•~,:;=^#`"
# Of those, the ones no word, name or identifier holds between two letters: dropped there.
_BREAKERS = frozenset("*·•~")
_SEP_RUN = re.compile(f"[{re.escape(_SEPARATORS)}]+")
_TOKEN = re.compile(r"\S+")
_ASCII_LETTERS = re.compile(r"[A-Za-z]+")
_SPELT_LAST = re.compile(r"[A-Za-z][,.;:!?]")


@dataclass
class Changes:
    """Counts of what `normalise` did to a text (or, summed, to many)."""

    nfkc: int = 0  # tokens NFKC changed
    confusables: int = 0  # characters folded to their Latin skeleton
    invisible: int = 0  # zero-width characters dropped
    joined: int = 0  # split or spelt-out words joined
    examples: list[str] = field(default_factory=list)  # a few "raw → read" pairs

    def add(self, other: Changes) -> None:
        self.nfkc += other.nfkc
        self.confusables += other.confusables
        self.invisible += other.invisible
        self.joined += other.joined
        for ex in other.examples:
            if len(self.examples) < 8 and ex not in self.examples:
                self.examples.append(ex)

    @property
    def any(self) -> bool:
        return bool(self.nfkc or self.confusables or self.invisible or self.joined)

    def to_json(self) -> dict[str, object]:
        return {
            "nfkc_tokens": self.nfkc,
            "confusables_folded": self.confusables,
            "invisible_dropped": self.invisible,
            "words_joined": self.joined,
            "examples": list(self.examples),
        }


# --- word knowledge ---------------------------------------------------------------------------


@cache
def _unigrams() -> tuple[dict[str, float], float]:
    import wordsegment

    wordsegment.load()
    return wordsegment.UNIGRAMS, float(sum(wordsegment.UNIGRAMS.values()))


def is_word(word: str, min_count: float = WORD_COUNT) -> bool:
    """An English word: 3+ letters and common in wordsegment's counts, or a small word."""
    w = word.lower()
    if len(w) < 3:
        return w in _SMALL_WORDS
    counts, _ = _unigrams()
    return counts.get(w, 0.0) >= min_count


def _log_p(word: str) -> float:
    """log P(word) under wordsegment's unigram model (its penalty for unseen words)."""
    counts, total = _unigrams()
    n = counts.get(word.lower())
    if n is not None:
        return math.log(n / total)
    return math.log(10.0 / (total * 10 ** len(word)))


@lru_cache(maxsize=1 << 16)  # bounded: hostile text offers endless distinct substrings
def _freq(word: str) -> float:
    """How often English writes `word` (wordfreq, 0 when it does not know it)."""
    from wordfreq import word_frequency

    return word_frequency(word, "en")


def _known(word: str) -> bool:
    """A word wordfreq or wordsegment has counted (any frequency), or a small word."""
    w = word.lower()
    if len(w) < 3:
        return w in _SMALL_WORDS
    return _freq(w) > 0 or w in _unigrams()[0]


def _spelt(letters: str) -> list[str]:
    """What letters spelt out one by one spell: the likeliest split into words wordfreq knows
    (its frequencies, which know "bitcoin" and do not take "withcrypto" for a word, decide:
    "drivinglicencesmade" is "driving licences made"), or the letters as one word when no split
    into known words exists (a name, new slang). Capitals stay as written."""
    low = letters.lower()
    n = len(low)
    if n > _LONGEST_RUN:  # no sentence is spelt out this long: leave it one token, cheaply
        return [letters]
    best: list[tuple[float, int]] = [(0.0, 0)] + [(-math.inf, 0)] * n
    for j in range(1, n + 1):
        for i in range(max(0, j - _LONGEST_WORD), j):
            w = low[i:j]
            if best[i][0] == -math.inf:
                continue
            f = _freq(w) if len(w) >= 3 or w in _SMALL_WORDS else 0.0
            if f <= 0:
                continue
            if best[i][0] + math.log(f) > best[j][0]:
                best[j] = (best[i][0] + math.log(f), i)
    if best[n][0] == -math.inf:
        return [letters]
    cuts = []
    j = n
    while j > 0:
        cuts.append(j)
        j = best[j][1]
    bounds = [0, *reversed(cuts)]
    return [letters[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# --- 1. NFKC ----------------------------------------------------------------------------------


def _is_cjk(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith(("CJK", "HANGUL", "HIRAGANA", "KATAKANA"))


def _nfkc(text: str, changes: Changes) -> str:
    def one(m: re.Match[str]) -> str:
        tok = m.group(0)
        if any(_is_cjk(c) for c in tok):
            return tok
        out = unicodedata.normalize("NFKC", tok)
        if out != tok:
            changes.nfkc += 1
        return out

    return _TOKEN.sub(one, text)


# --- 2. look-alike letters --------------------------------------------------------------------


@cache
def _skeletons() -> dict[str, str]:
    """Non-ASCII letter → the one ASCII letter TR39 says it looks like."""
    import confusable_homoglyphs

    path = Path(confusable_homoglyphs.__file__).parent / "confusables.json"
    table = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for ch, looks in table.items():
        if len(ch) != 1 or ch.isascii() or not ch.isalpha():
            continue
        for look in looks:
            c = look.get("c", "")
            if len(c) == 1 and c.isascii() and c.isalpha():
                out[ch] = c
                break
    return out


def _is_latin(ch: str) -> bool:
    return ch.isascii() or unicodedata.name(ch, "").startswith("LATIN")


def _fold(text: str, changes: Changes) -> str:
    skel = _skeletons()
    tokens = _TOKEN.findall(text)
    letters = [c for c in text if c.isalpha()]
    latin_text = bool(letters) and sum(c.isascii() for c in letters) * 2 >= len(letters)

    def one(m: re.Match[str]) -> str:
        tok = m.group(0)
        foreign = [c for c in tok if c.isalpha() and not _is_latin(c) and c in skel]
        others = [c for c in tok if c.isalpha() and c not in foreign]
        # Fold look-alikes only inside a Latin word (the rest of its letters Latin, "ø" too).
        if not foreign or not all(_is_latin(c) for c in others):
            return tok
        folded = "".join(skel[c] if c in foreign else c for c in tok)
        core = folded.strip("\"'()[]{}<>,.;:?!")
        if others or (latin_text and core.isalpha() and is_word(core)):
            changes.confusables += len(foreign)
            return folded
        return tok

    del tokens
    return _TOKEN.sub(one, text)


# --- 3. separators and splits -----------------------------------------------------------------


def _drop_invisible(text: str, changes: Changes) -> str:
    out = []
    for i, c in enumerate(text):
        if c in _INVISIBLE:
            before = next((x for x in reversed(text[:i]) if x not in _INVISIBLE), "")
            after = next((x for x in text[i + 1 :] if x not in _INVISIBLE), "")
            if before.isascii() and before.isalpha() and after.isascii() and after.isalpha():
                changes.invisible += 1
                continue
        out.append(c)
    return "".join(out)


def _join_pieces(pieces: list[str], *, symbol: bool = False, breaker: str = "") -> list[str] | None:
    """The word(s) that letter-only `pieces` were split from, or None to leave them.

    `symbol`: they were split by a symbol no English word holds inside it (. * _ ...), not a
    hyphen or a space: the joined word may be rarer (`RARE_WORD_COUNT`); the odds test still
    decides, and pieces that are all words stay apart. `breaker`: "always" when
    split only by symbols nothing writes between letters (`_BREAKERS`: joined whatever the
    word), "known" when split by underscores (joined when the join is a known word: "bitc_oin",
    "photo_s"; identifiers such as "snake_case" stay)."""
    joined = "".join(pieces)
    if all(len(p) == 1 for p in pieces):
        # "M_a_r_i_s_h", "o.x.y.c.o.d.o.n.e": letters one by one spell a word, known or not.
        return _spelt(joined) if len(joined) >= MIN_SPELLED else None
    if breaker == "always" or (breaker == "known" and _known(joined)):
        return [joined]
    if all(is_word(p) for p in pieces):
        return None  # "well-known", "tele gram", "pas.sword": words of their own
    # A rarer word is enough where no piece is a word of its own ("ketami-ne").
    rare = symbol or not any(is_word(p) for p in pieces)
    if not is_word(joined, RARE_WORD_COUNT if rare else WORD_COUNT):
        return None
    odds = _log_p(joined) - sum(_log_p(p) for p in pieces)
    return [joined] if odds >= math.log(JOIN_ODDS) else None


def _inner_separators(text: str, changes: Changes) -> str:
    """ "f.r.e.e" / "coc-aine" inside one token (edge punctuation kept)."""

    def one(m: re.Match[str]) -> str:
        tok = m.group(0)
        core = tok.strip(_SEPARATORS + "\"'()[]{}!?")
        if not core or not _SEP_RUN.search(core):
            return tok
        pieces = _SEP_RUN.split(core)
        if len(pieces) < 2 or not all(_ASCII_LETTERS.fullmatch(p) for p in pieces):
            return tok
        seps = set(_SEP_RUN.findall(core))
        # A hyphen joins words in plain text, and dots write initialisms ("U.S.A"): only the
        # other symbols count as sure signs of a word broken on purpose.
        single = all(len(p) == 1 for p in pieces)
        words = _join_pieces(
            pieces,
            symbol=bool(seps - {"-"}) and not (single and "." in seps),
            breaker=(
                "always"
                if all(set(sep) <= _BREAKERS for sep in seps)
                else "known"
                if all(set(sep) <= _BREAKERS | {"_"} for sep in seps)
                else ""
            ),
        )
        if words is None:
            return tok
        start = tok.index(core)
        out = tok[:start] + " ".join(words) + tok[start + len(core) :]
        changes.joined += 1
        if len(changes.examples) < 8:
            changes.examples.append(f"{tok} → {out}")
        return out

    return _TOKEN.sub(one, text)


def _spaced(text: str, changes: Changes) -> str:
    """ "f r e e" (single letters apart) and "coc aine" (a word cut in two) across tokens."""
    parts = re.split(r"(\s+)", text)  # tokens at even indices, whitespace at odd
    tokens, gaps = parts[0::2], [*parts[1::2], ""]
    out: list[str] = []
    i, joined = 0, False
    while i < len(tokens):
        tok = tokens[i]
        # A run of single letters.
        j = i
        while j < len(tokens) and len(tokens[j]) == 1 and _ASCII_LETTERS.fullmatch(tokens[j]):
            j += 1
        tail = ""  # "w i l d:" ends the run with its punctuation
        if j < len(tokens) and _SPELT_LAST.fullmatch(tokens[j]) and j - i >= MIN_SPELLED - 1:
            tail = tokens[j][1:]
            tokens = [*tokens[:j], tokens[j][0], *tokens[j + 1 :]]
            j += 1
        if j - i >= MIN_SPELLED:
            words = _spelt("".join(tokens[i:j]))
            if tail:
                words[-1] += tail
            changes.joined += 1
            joined = True
            if len(changes.examples) < 8:
                changes.examples.append(f"{' '.join(tokens[i:j])} → {' '.join(words)}")
            out += [" ".join(words), gaps[j - 1]]
            i = j
            continue
        # Two letter-only pieces of 2+ letters, at least one not a word.
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if (
            len(tok) >= 2
            and len(nxt) >= 2
            and _ASCII_LETTERS.fullmatch(tok)
            and _ASCII_LETTERS.fullmatch(nxt)
            and (nxt.islower() or tok.isupper())
        ):
            words = _join_pieces([tok, nxt])
            if words is not None:
                changes.joined += 1
                joined = True
                if len(changes.examples) < 8:
                    changes.examples.append(f"{tok} {nxt} → {words[0]}")
                out += [words[0], gaps[i + 1]]
                i += 2
                continue
        out += [tok, gaps[i]]
        i += 1
    return "".join(out) if joined else text


def normalise(text: str) -> tuple[str, Changes]:
    """`text` after NFKC, look-alike folding and split repair, with what was done."""
    changes = Changes()
    if not text:
        return text, changes
    out = _nfkc(text, changes)
    out = _fold(out, changes)
    out = _drop_invisible(out, changes)
    out = _inner_separators(out, changes)
    out = _spaced(out, changes)
    return out, changes


def normalise_text(text: str) -> str:
    """`normalise` without the counts."""
    return normalise(text)[0]
