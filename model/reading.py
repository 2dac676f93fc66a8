"""Reading OCR text written to evade: a learnt character channel and the reader it drives.

Text in moderated images is written to slip past filters: leetspeak ("fr33 m0n3y"), letters
from other scripts that look Latin, an OCR engine's habitual confusions. A `Channel` says how a
writing swaps characters, P(observed | intended), for the letters it swaps; `training.
substitutions.estimate_channel` learns one from analysts' corrections. A `Reader` uses it
to read such text back into the words of a lexicon before the text reaches the model's prompt:
each word the lexicon lacks that holds a character the channel writes is decoded to the lexicon
word of the same length that best explains it, and replaced only when that word wins clearly
and every differing character is one the channel writes for that letter. Known words, numbers,
handles and anything it cannot place are left as they are.

Before the channel, `read` runs `model.normalise` (NFKC, TR39 look-alike folding, split and
separator repair): the fixed order is NFKC → confusables → splits → the learnt channel. The
channel may also write one letter as a few characters from `MULTI_UNITS` ("|<" for k, "vv" for
w, "/\\" for a): an unknown word is cut into such units before it is decoded.

A post-trained candidate carries its reader as `reading.json` beside its adapter (or in its
model directory); `TransformersBackend` applies it to the OCR hint, so the same prompt the
candidate was trained on is the one it is served. The raw OCR text is what is stored and shown.

Try it:
    python -c "from model.reading import Channel, Reader; \
r = Reader(Channel({'e': {'3': .6}, 'o': {'0': .6}}), {'free': 1, 'money': 1}); \
print(r.read('fr33 m0n3y'))"
"""

from __future__ import annotations

import json
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from storage.errors import WardenError

log = logging.getLogger(__name__)

READING_FILE = "reading.json"
MIN_WORD = 3  # shorter words align to too many candidates to say anything
MAX_READ_CHARS = 2000  # the prompt keeps far less (prompts.MAX_OCR_CHARS); the rest is kept raw
_TOKEN = re.compile(r"\S+")
# Multi-character ways to draw one letter that the channel can learn (longest first). Their
# meaning is learnt from corrections like any swap; only the cutting into units is fixed here.
MULTI_UNITS = ("\\/\\/", "|-|", "|_|", "|<", "|{", "/\\", "()", "|)", "[)", "\\/", "[]", "vv")
_UNIT_CHAR = {u: chr(0xE000 + i) for i, u in enumerate(MULTI_UNITS)}  # private-use stand-ins
_CHAR_UNIT = {c: u for u, c in _UNIT_CHAR.items()}
_UNIT_RE = re.compile("|".join(re.escape(u) for u in MULTI_UNITS))


def collapse_units(word: str) -> str:
    """`word` with each multi-character unit replaced by its one private-use stand-in."""
    return _UNIT_RE.sub(lambda m: _UNIT_CHAR[m.group(0)], word) if len(word) > 1 else word


def unit_text(ch: str) -> str:
    """The characters a stand-in (or an ordinary character) is written with."""
    return _CHAR_UNIT.get(ch, ch)


def unit_char(observed: str) -> str:
    """The one character standing for `observed` (a character or a `MULTI_UNITS` entry)."""
    return _UNIT_CHAR.get(observed, observed)


@dataclass(frozen=True)
class Channel:
    """P(observed | intended) for the characters that the writing swaps (lower-case keys)."""

    subs: dict[str, dict[str, float]] = field(default_factory=dict)
    aligned_words: int = 0  # distinct unknown words aligned in the final round
    unknown_words: int = 0  # distinct words of the corrected text the reference lacks
    affected_items: int = 0  # corrected items that showed the writing

    @property
    def empty(self) -> bool:
        return not self.subs

    def summary(self, top: int = 16) -> list[dict[str, Any]]:
        """The strongest substitutions, for a dataset card: [{intended, observed, p}]."""
        pairs = [(c, o, p) for c, obs in self.subs.items() for o, p in obs.items()]
        pairs.sort(key=lambda t: -t[2])
        return [{"intended": c, "observed": o, "p": round(p, 3)} for c, o, p in pairs[:top]]

    def to_json(self) -> dict[str, Any]:
        return {
            "substitutions": self.summary(top=64),
            "aligned_words": self.aligned_words,
            "unknown_words": self.unknown_words,
            "affected_items": self.affected_items,
        }


_EDGE_PUNCT = "\"'()[]{},.;:?«»“”‘’"  # not < >: "|<" draws a k


def words_of(text: str) -> list[str]:
    """Lower-case words of `text`, edge punctuation stripped (not $ ! | @: writing uses them)."""
    out = []
    for tok in text.split():
        w = tok.strip(_EDGE_PUNCT).lower()
        if len(w) >= MIN_WORD:
            out.append(w)
    return out


def _script(ch: str) -> str:
    return unicodedata.name(ch, "?").split(" ", 1)[0]


def is_plain_word(word: str) -> bool:
    """Letters of one script (inner ' and - allowed): a word as a reference text writes it.

    Digits among letters and mixed scripts are what evasive writing looks like, so a replay
    text's "l3ak3d" or Cyrillic-in-Latin "lеaked" never becomes a reference word.
    """
    core = word.replace("'", "").replace("-", "")
    return core.isalpha() and len({_script(c) for c in core}) == 1


def lexicon_of(texts: Iterable[str]) -> Counter[str]:
    """Counts of the plain words (`is_plain_word`, MIN_WORD+ characters) in `texts`."""
    return Counter(w for t in texts for w in words_of(t or "") if is_plain_word(w))


class Reader:
    """Reads text written through a `Channel` back into the words of a lexicon.

    A word is decoded when the lexicon lacks it and it holds a character the channel writes:
    to the lexicon word of its length that maximises P(word)^0.1 * prod P(observed | intended),
    only when that word beats the runner-up by `margin` (log odds) and every differing
    character is a swap the channel knows. Punctuation around a word is kept, and a capital
    first letter stays capital.
    """

    def __init__(
        self, channel: Channel, lexicon: Mapping[str, int], *, margin: float = math.log(4.0)
    ) -> None:
        self.channel = channel
        self.lexicon = Counter({w: int(n) for w, n in lexicon.items() if len(w) >= MIN_WORD})
        self.margin = margin
        subs = {c: {unit_char(o): p for o, p in obs.items()} for c, obs in channel.subs.items()}
        written = {o for obs in subs.values() for o in obs}
        self._written = frozenset(written)
        alphabet = sorted({c for w in self.lexicon for c in w} | written)
        self._index = {c: i for i, c in enumerate(alphabet)}
        size = len(alphabet) + 1  # the last row: a character neither side has
        self._floor = math.log(1e-3)  # below it: a difference the channel does not explain
        log_p = np.full((size, size), math.log(1e-4))  # [observed, intended]
        for c, i in self._index.items():
            swaps = subs.get(c, {})
            log_p[i, i] = math.log(max(1e-3, 1.0 - sum(swaps.values())))
            for o, p in swaps.items():
                log_p[self._index[o], i] = math.log(p)
        self._log_p = log_p
        groups: dict[int, list[str]] = {}
        for w in self.lexicon:
            groups.setdefault(len(w), []).append(w)
        self._by_len: dict[int, tuple[list[str], np.ndarray, np.ndarray]] = {}
        for n, words in groups.items():
            codes = np.array([[self._index[c] for c in w] for w in words], dtype=np.int64)
            prior = 0.1 * np.log(np.array([self.lexicon[w] for w in words], dtype=np.float64))
            self._by_len[n] = (words, codes, prior)
        self._cache: dict[str, str | None] = {}

    def decode_word(self, word: str) -> str | None:
        """The lexicon word that `word` (lower case, no edge punctuation) writes, or None."""
        if word in self._cache:
            return self._cache[word]
        out = self._decode(word)
        if len(self._cache) < 100_000:
            self._cache[word] = out
        return out

    def _decode(self, word: str) -> str | None:
        word = collapse_units(word)
        if word in self.lexicon or not self._written.intersection(word):
            return None
        if not any(c.isalpha() for c in word):  # a number, a date, a price: never a word
            return None
        group = self._by_len.get(len(word))
        if group is None:
            return None
        words, codes, prior = group
        unknown = len(self._index)
        obs = np.array([self._index.get(c, unknown) for c in word])
        scores = self._log_p[obs[None, :], codes].sum(axis=1) + prior
        best = int(np.argmax(scores))
        if len(scores) > 1 and scores[best] - np.partition(scores, -2)[-2] < self.margin:
            return None
        # Every character that differs must be one the channel writes for that letter:
        # "machine" is never read as "cocaine", nor one number as another.
        if (self._log_p[obs, codes[best]] < self._floor).any():
            return None
        return words[best]

    def read(self, text: str) -> str:
        """`text` normalised (`model.normalise`) and the words the channel wrote read back
        (the first MAX_READ_CHARS; the rest is kept raw)."""
        if not text:
            return text
        from model.normalise import normalise_text

        head, rest = text[:MAX_READ_CHARS], text[MAX_READ_CHARS:]
        return self.read_channel(normalise_text(head)) + rest

    def read_channel(self, text: str) -> str:
        """The learnt channel's step alone: each unknown word it wrote read back."""
        if self.channel.empty or not text:
            return text
        head, rest = text[:MAX_READ_CHARS], text[MAX_READ_CHARS:]

        def one(m: re.Match[str]) -> str:
            token = m.group(0)
            core = token.strip(_EDGE_PUNCT)
            if len(core) < MIN_WORD:
                return token
            lead = token[: len(token) - len(token.lstrip(_EDGE_PUNCT))]
            tail = token[len(lead) + len(core) :]
            word = self.decode_word(core.lower())
            if word is None:
                return token
            if core[:1].isupper():
                word = word[:1].upper() + word[1:]
            return f"{lead}{word}{tail}"

        return _TOKEN.sub(one, head) + rest

    # --- on disk ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "channel": self.channel.to_json() | {"subs": self.channel.subs},
            "lexicon": dict(self.lexicon),
        }

    def save(self, folder: Path) -> Path:
        path = Path(folder) / READING_FILE
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, data: Any) -> Reader:
        """Validated: a malformed file is a WardenError naming what is wrong."""
        if not isinstance(data, dict) or data.get("format") != 1:
            raise WardenError("reading file: not a Warden reading (format 1)")
        ch, lex = data.get("channel"), data.get("lexicon")
        subs = ch.get("subs") if isinstance(ch, dict) else None
        if not isinstance(subs, dict) or not isinstance(lex, dict):
            raise WardenError("reading file: needs channel.subs and lexicon objects")
        clean: dict[str, dict[str, float]] = {}
        for c, obs in subs.items():
            if not (isinstance(c, str) and len(c) == 1 and isinstance(obs, dict)):
                raise WardenError(f"reading file: bad channel entry {c!r}")
            for o, p in obs.items():
                ok = isinstance(o, str) and (len(o) == 1 or o in MULTI_UNITS)
                ok = ok and isinstance(p, int | float)
                if not ok or not 0 < p <= 1:
                    raise WardenError(f"reading file: bad swap {c!r} -> {o!r}: {p!r}")
            if sum(obs.values()) > 1 + 1e-6:
                raise WardenError(f"reading file: swaps of {c!r} sum above 1")
            clean[c] = {o: float(p) for o, p in obs.items()}
        for w, n in lex.items():
            if not isinstance(w, str) or not isinstance(n, int) or n < 1:
                raise WardenError(f"reading file: bad lexicon entry {w!r}: {n!r}")
        meta = {
            k: v if isinstance(v := ch.get(k), int) else 0
            for k in ("aligned_words", "unknown_words", "affected_items")
        }
        return cls(Channel(subs=clean, **meta), lex)

    @classmethod
    def load(cls, folder: str | Path | None) -> Reader | None:
        """The reader in `folder` (its READING_FILE), None when there is none."""
        if folder is None:
            return None
        path = Path(folder) / READING_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WardenError(f"{path}: cannot read it ({exc})") from exc
        try:
            return cls.from_json(data)
        except WardenError as exc:
            raise WardenError(f"{path}: {exc}") from None
