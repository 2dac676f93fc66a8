"""Text normalisation before the learnt reader (model.normalise): NFKC, TR39 look-alike
folding, split/separator repair; what it must leave alone (initialisms, "h.i.s", Korean,
Chinese, Cyrillic words, plain sentences); and the fixed order inside `Reader.read`."""

from __future__ import annotations

import pytest

from model.normalise import normalise, normalise_text
from model.reading import Channel, Reader


@pytest.mark.parametrize(
    "text",
    [
        "h.i.s",
        "at 9 a.m.",
        "Meet me at 9 a.m. or 5 p.m., e.g. at the U.S.A. desk",
        "안녕하세요, 세계! 오늘 날씨가 좋네요.",
        "你好，世界。今天天气很好！",
        "Москва — столица России",
        "Ελληνικά γράμματα",
        "well-known tele-gram don't",
        "Buy cocaine online, fast shipping",
        "SSN 000-44-9901, DOB 2004-06-13 $120 each @happy_bet83",
        "I a m",
        "snake_case",
    ],
)
def test_plain_and_foreign_text_is_left_as_written(text: str) -> None:
    out, changes = normalise(text)
    assert out == text and not changes.any


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        ("f.r.e.e money", "free money"),
        ("F-R-E-E bitcoin", "FREE bitcoin"),
        ("f r e e bitcoin", "free bitcoin"),
        ("f r e e m o n e y now", "free money now"),
        ("buy coc.aine here", "buy cocaine here"),
        ("buy coc aine here", "buy cocaine here"),
        ("c_o_c_a_i_n_e!", "cocaine!"),
        ("fr\u200bee mon\u200dey", "free money"),
        ("ｆｒｅｅ ｍｏｎｅｙ", "free money"),
        # Spelt out, the letters are read whatever they spell: rare words, several words, new
        # words (wordfreq knows "bitcoin"; wordsegment's older counts do not).
        ("Buy o x y c o d o n e now", "Buy oxycodone now"),
        ("u n t r a c e a b l e r i f l e, kits", "untraceable rifle, kits"),
        ("d r i v i n g l i c e n c e s m a d e to order", "driving licences made to order"),
        ("S y s t e m t h a n I up", "System than I up"),
        ("send b.i.t.c.o.i.n now", "send bitcoin now"),
        ("packs of M.D.M.A tonight", "packs of MDMA tonight"),
        ("pay w i t h crypto", "pay with crypto"),
        # Symbols nothing writes between letters go; underscores when the join is a word.
        ("num·ber and Kramer*ville", "number and Kramerville"),
        ("invest_ment in bitc_oin", "investment in bitcoin"),
        ("ketami-ne", "ketamine"),
    ],
)
def test_splits_separators_and_wide_forms_are_undone(raw: str, read: str) -> None:
    out, changes = normalise(raw)
    assert out == read and changes.any


def test_line_breaks_survive_a_join() -> None:
    assert normalise_text("f r e e\nmoney here") == "free\nmoney here"


def test_look_alike_letters_fold_in_latin_words_only() -> None:
    # Cyrillic е/о/а inside Latin words; Greek alpha; a whole look-alike word in Latin text.
    out, changes = normalise("l\u0435aked p\u0430ssw\u043erd \u03b1pple, \u0441\u043e\u0440y it")
    assert out == "leaked password apple, copy it" and changes.confusables == 7
    # A Cyrillic word in Cyrillic text is a Cyrillic word.
    assert normalise_text("\u0441\u043e\u0440\u0443 \u0442\u0435\u043a\u0441\u0442") == (
        "\u0441\u043e\u0440\u0443 \u0442\u0435\u043a\u0441\u0442"
    )


def test_the_reader_normalises_before_its_channel() -> None:
    """NFKC → look-alikes → splits → the learnt channel, in that order: a spelt-out word is
    joined before the channel sees it, and text with no channel is still normalised."""
    leet = Reader(Channel({"e": {"3": 0.6}, "o": {"0": 0.6}}), {"free": 5, "money": 5})
    assert leet.read("f.r.e.e m0n3y") == "free money"
    assert leet.read("fr33 m\u043en3y") == "free money"
    empty = Reader(Channel({}), {"free": 5})
    assert empty.read("f r e e") == "free" and empty.read("h.i.s") == "h.i.s"


def test_multi_character_letters_are_read_as_one() -> None:
    reader = Reader(
        Channel({"k": {"|<": 0.5}, "w": {"vv": 0.5}, "a": {"/\\": 0.4}}), {"kill": 3, "wallet": 3}
    )
    assert reader.read("|<ill vv/\\llet") == "kill wallet"
    back = Reader.from_json(reader.to_json())
    assert back.read("|<ill") == "kill"


def test_a_huge_spelt_out_run_is_left_one_token() -> None:
    """Hostile text: 50,000 single letters apart. Normalisation joins them into one token
    (past `_LONGEST_RUN` letters no split into words is searched) and loses no letter."""
    raw = " ".join("ab" * 25_000)
    assert normalise_text(raw) == "ab" * 25_000
