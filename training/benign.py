"""Harmless text from well-kept generators (Faker, Mimesis, wordfreq), deterministic per seed.

SynthMod's own benign bank is a few hundred phrases; a model post-trained against it alone
learns "text unlike those phrases is harmful" (issue 18: "Garden party at 3 pm" flagged as
drugs). This module draws varied harmless text from libraries that other people keep:

- Faker (`en_US`, `ko_KR`, `zh_CN`): business addresses and phone numbers, companies, jobs,
  receipts, appointments (never a person's name with their phone number or home address: the
  policy's privacy_pii);
- Mimesis (`en`, `ko`, `zh`): sentences, quotes, dishes, drinks, names, occupations, places;
- wordfreq (`en`, `ko`, `zh`): short runs of frequent words, drawn by frequency.

`benign_texts(n, seed)` is what training uses (`training.dataset` negatives, the demo's
`benign` stage). `heldout_benign_texts(n, seed)` is for measuring only: other locales
(`en_GB`, `en_AU`, `zh_TW`), other providers and other seeds, so a bench of "benign text the
model never saw" is not the training text again (bench/demo_benign.py). Texts that name a
violation (`is_loaded`: policy words, rare words of SynthMod's harmful phrases) are skipped.

Everything is offline: the generators ship their data in their wheels.

Try it: python -m training.benign 8
"""

from __future__ import annotations

import functools
import random
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

# Words that name a violation; a benign text holding one is not drawn (a "benign" label on
# "kill" or "cocaine" would teach the opposite of the policy). Whole words match with their
# inflections ("bet", "bets", "betting"; not "better", "between": matched as prefixes, a few
# short words kept the most common English words out of every harmless text); stems that are
# not words match as prefixes ("suicid": suicide, suicidal). Korean and Chinese by substring.
_LOADED_WORDS = (
    "kill", "murder", "die", "dying", "dead", "death", "cut", "blood", "hang", "drug", "heroin",
    "meth", "weed", "pill", "dose", "xanax", "opioid", "fentanyl", "mdma", "lsd", "cannabis",
    "marijuana", "hate", "nazi", "bomb", "gun", "weapon", "shoot", "attack", "sex", "nude",
    "nudity", "porn", "naked", "fuck", "shit", "bitch", "cunt", "whore", "slut", "dick",
    "idiot", "stupid", "ugly", "loser", "worthless", "scam", "fraud", "bitcoin", "crypto",
    "casino", "bet", "password", "ssn", "passport", "wallet", "fake", "counterfeit", "stolen",
    "hack", "prize", "winner", "lottery", "loan", "cash", "rape", "war", "enemy", "destroy",
    "threat", "danger", "poison", "alcohol", "vodka", "beer", "wine", "terror",
)  # fmt: skip
_LOADED_STEMS = (
    "suicid", "starv", "cocain", "overdos", "ketamin", "racis", "terroris", "jihad", "gambl",
    "violen", "abus", "whisk", "smok", "cigar", "pornograph", "sexual",
    "죽", "자살", "마약", "살인", "혐오", "도박", "사기", "대출",
    "死", "杀", "毒", "赌", "骗", "恨", "血", "枪", "炸", "贷", "殺", "賭", "騙",
)  # fmt: skip
# Inflections of a whole loaded word: kill/kills/killed/killer/killing, drug/drugs/drugged,
# danger/dangerous, hate/hateful, enemy/enemies, threat/threatening.
_INFLECTIONS = (
    "", "s", "es", "d", "ed", "ing", "er", "ers", "y", "ly", "ful", "ous", "en", "ens", "ened",
    "ening", "age", "ity",
)  # fmt: skip


@functools.cache
def _loaded_forms() -> frozenset[str]:
    forms: set[str] = set()
    for w in _LOADED_WORDS:
        forms.update(w + end for end in _INFLECTIONS)
        forms.update(w + w[-1] + end for end in ("ing", "ed"))  # betting, cutting, gunned
        if w.endswith("e"):
            forms.update(w[:-1] + end for end in ("ing", "ed", "er", "ers"))  # dosing, faker
        if w.endswith("y"):
            forms.update((w[:-1] + "ies", w[:-1] + "ied"))  # enemies
    return frozenset(forms)


_WORD = re.compile(r"[^\W\d_]+")
# A word that makes an English name a company's (Faker's suffixes and the common others).
_COMPANY_WORD = re.compile(r"\b(Inc|Ltd|LLC|PLC|Group|Sons|Co|Corp|Company|Limited|LLP)\b\.?")


@dataclass(frozen=True)
class BenignText:
    text: str
    source: str  # generator:locale:kind, e.g. "faker:en_US:address"
    lang: str  # en, ko or zh


@functools.cache
def _rare_harmful_words() -> frozenset[str]:
    """Words of SynthMod's harmful phrases that are rare in English (wordfreq Zipf < 3.2) and
    absent from its benign phrases: "fentanyl", "ketamine", "giveaway", not "party"."""
    from wordfreq import zipf_frequency

    from training.synth_phrases import CAPTION_TEMPLATES, TEMPLATES

    harmful: set[str] = set()
    benign: set[str] = set()
    for t in TEMPLATES + CAPTION_TEMPLATES:
        words = {w.lower() for w in _WORD.findall(t.text)}
        (harmful if t.labels else benign).update(words)
    return frozenset(w for w in harmful - benign if w.isascii() and zipf_frequency(w, "en") < 3.2)


def is_loaded(text: str) -> bool:
    """True when `text` holds a word that names a violation (`_LOADED_WORDS` with their
    inflections, `_LOADED_STEMS`, rare words of SynthMod's harmful phrases)."""
    low = text.lower()
    if any(s in low for s in _LOADED_STEMS if not s.isascii()):
        return True
    rare, forms = _rare_harmful_words(), _loaded_forms()
    for w in _WORD.findall(low):
        if w in rare or w in forms or any(w.startswith(s) for s in _LOADED_STEMS if s.isascii()):
            return True
    return False


# --- generators --------------------------------------------------------------------------------

Draw = Callable[[random.Random], str]


def _faker_draws(locale: str, seed: int) -> list[tuple[str, Draw]]:
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(seed)

    def one_line(s: str) -> str:
        return ", ".join(part.strip() for part in s.splitlines() if part.strip())

    def business() -> str:
        # English Faker names a company "Wilson-Hodges" or "Griffin, Griffith and Perez" a
        # third of the time: with a phone number that reads as people and their number
        # ("Hernandez-Ferrell 0476 974 941"), which the policy calls privacy_pii, not a
        # business listing. Those get a company word; the Korean and Chinese names carry one.
        name = fake.company()
        if locale.startswith("en") and not _COMPANY_WORD.search(name):
            name = f"{name} {fake.company_suffix()}"
        return name

    # Addresses and phone numbers are a business's: a person's name with their phone number
    # or home address is what the policy calls privacy_pii ("exposes personal data such as
    # phone numbers, addresses ... of a person"): drawing it as harmless would label the
    # policy's own examples benign.
    draws: list[tuple[str, Draw]] = [
        ("business_address", lambda r: f"{business()}, {one_line(fake.address())}"),
        ("company", lambda r: f"{fake.company()} · {fake.job()} · {fake.city()}"),
        (
            "appointment",
            lambda r: f"{fake.name()} {fake.day_of_week()} {fake.time(pattern='%H:%M')}",
        ),
        (
            "receipt",
            lambda r: f"{fake.company()} {fake.date()} {fake.pyint(1, 500)}.{r.randint(0, 99):02d}",
        ),
        ("business_phone", lambda r: f"{business()} {fake.phone_number()}"),
    ]
    if locale.startswith("en"):
        draws += [
            ("sentence", lambda r: fake.sentence(nb_words=r.randint(5, 12))),
            ("catch_phrase", lambda r: f"{fake.catch_phrase()}. {fake.bs().capitalize()}."),
            ("notice", lambda r: f"{fake.color_name()} {fake.word()} sale {fake.day_of_week()}"),
        ]
    return draws


_MIMESIS_LOCALES = {"en": "EN", "ko": "KO", "zh": "ZH", "en-gb": "EN_GB", "en-au": "EN_AU"}


def _mimesis_draws(locale: str, seed: int) -> list[tuple[str, Draw]]:
    from mimesis import Address, Datetime, Food, Person, Text
    from mimesis.locales import Locale

    loc = getattr(Locale, _MIMESIS_LOCALES[locale])
    text, food, person = Text(loc, seed=seed), Food(loc, seed=seed), Person(loc, seed=seed)
    address, when = Address(loc, seed=seed), Datetime(loc, seed=seed)
    return [
        ("sentence", lambda r: text.sentence()),
        ("quote", lambda r: text.quote()),
        ("menu", lambda r: f"{food.dish()}, {food.fruit()}, {food.drink()}"),
        ("person", lambda r: f"{person.full_name()} {person.occupation()}"),
        ("place", lambda r: f"{address.address()} {address.city()} {when.day_of_week()}"),
        ("words", lambda r: " ".join(text.words(quantity=r.randint(3, 7)))),
    ]


@functools.cache
def _frequent_words(lang: str, n: int = 5000) -> tuple[tuple[str, ...], tuple[float, ...]]:
    from wordfreq import top_n_list

    # Weighted by rank (Zipf: frequency ~ 1/rank), square-rooted so content words turn up.
    ranked = [(r, w) for r, w in enumerate(top_n_list(lang, n)) if _WORD.fullmatch(w)]
    kept = [(r, w) for r, w in ranked if not is_loaded(w)]
    return tuple(w for _, w in kept), tuple((r + 10) ** -0.5 for r, _ in kept)


def _wordfreq_draws(lang: str, seed: int) -> list[tuple[str, Draw]]:
    words, weights = _frequent_words(lang)
    sep = "" if lang == "zh" else " "

    def draw(r: random.Random) -> str:
        text = sep.join(r.choices(words, weights=weights, k=r.randint(3, 8)))
        return text[:1].upper() + text[1:]

    return [("frequent_words", draw)]


# Training draws and measuring draws: different locales, and a different seed stream.
TRAIN_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("faker", "en_US", "en"), ("faker", "ko_KR", "ko"), ("faker", "zh_CN", "zh"),
    ("mimesis", "en", "en"), ("mimesis", "ko", "ko"), ("mimesis", "zh", "zh"),
    ("wordfreq", "en", "en"), ("wordfreq", "ko", "ko"), ("wordfreq", "zh", "zh"),
)  # fmt: skip
HELDOUT_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("faker", "en_GB", "en"), ("faker", "en_AU", "en"), ("faker", "zh_TW", "zh"),
    ("mimesis", "en-gb", "en"), ("mimesis", "en-au", "en"), ("mimesis", "ko", "ko"),
)  # fmt: skip
# English carries most of a queue's text: it gets this share of the draws.
EN_SHARE = 0.6


def _draws(sources: tuple[tuple[str, str, str], ...], seed: int) -> list[tuple[str, str, Draw]]:
    makers = {"faker": _faker_draws, "mimesis": _mimesis_draws, "wordfreq": _wordfreq_draws}
    out = []
    for gen, locale, lang in sources:
        for kind, draw in makers[gen](locale, seed):
            out.append((f"{gen}:{locale}:{kind}", lang, draw))
    return out


def _generate(
    n: int, seed: int, sources: tuple[tuple[str, str, str], ...], salt: str
) -> list[BenignText]:
    if n < 0:
        raise ValueError("n must be zero or more")
    rng = random.Random(f"benign:{salt}:{seed}")
    draws = _draws(sources, seed if salt == "train" else seed + 7919)
    if salt != "train":
        # Mimesis draws its sentences and quotes from one small bank per language whatever
        # the locale: those would be the training texts again.
        draws = [
            d
            for d in draws
            if not d[0].startswith("mimesis") or d[0].split(":")[2] not in ("sentence", "quote")
        ]
    english = [d for d in draws if d[1] == "en"]
    other = [d for d in draws if d[1] != "en"] or english
    out: list[BenignText] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 20 * n + 100:
            raise RuntimeError(f"benign generators gave {len(out)} of {n} distinct texts")
        source, lang, draw = rng.choice(english if rng.random() < EN_SHARE else other)
        text = " ".join(draw(rng).split())[:160]
        if len(text) < 4 or text in seen or is_loaded(text):
            continue
        seen.add(text)
        out.append(BenignText(text, source, lang))
    return out


def benign_texts(n: int, seed: int = 0) -> list[BenignText]:
    """`n` distinct harmless texts for training, the same for the same (n, seed)."""
    return _generate(n, seed, TRAIN_SOURCES, "train")


def heldout_benign_texts(n: int, seed: int = 0) -> list[BenignText]:
    """`n` harmless texts for measuring only: locales, providers and seed stream that
    `benign_texts` never uses."""
    return _generate(n, seed, HELDOUT_SOURCES, "heldout")


def benign_specs(texts: list[BenignText], seed: int, size: int = 224) -> list[Any]:
    """`texts` as SynthMod sample specs (no label, clean variant, a font of their script and a
    text layout drawn from `seed`), for `training.synth.render_sample`."""
    from training import synth_render
    from training.synth import SampleSpec

    rng = random.Random(f"benign-specs:{seed}")
    layouts = ("poster", "card", "chat", "note")
    out = []
    for i, t in enumerate(texts):
        fonts = synth_render.fonts_for(t.lang) or synth_render.fonts_for("en")
        out.append(
            SampleSpec(
                index=i,
                seed=rng.getrandbits(62),
                labels=(),
                family=f"benign.{t.source.rsplit(':', 1)[0]}",
                lang=t.lang,
                base_text=t.text,
                text=t.text,
                variant="clean",
                font=rng.choice(fonts).name,
                layout=rng.choice(layouts),
                size=size,
            )
        )
    return out


def with_carriers(specs: list[Any], share: float, seed: int) -> list[Any]:
    """`specs` where a `share` of them (drawn by `seed`) have a harmless generator text of
    their language put before or after their phrase; labels stay."""
    rng = random.Random(f"carrier:{seed}")
    pool: dict[str, list[str]] = {}
    for t in benign_texts(len(specs), seed + 17):
        pool.setdefault(t.lang, []).append(t.text)
    out = []
    for spec in specs:
        texts = pool.get(spec.lang) or pool.get("en") or []
        if not spec.text or not texts or rng.random() >= share:
            out.append(spec)
            continue
        carrier = rng.choice(texts)
        text = f"{carrier} {spec.text}" if rng.random() < 0.5 else f"{spec.text} {carrier}"
        out.append(replace(spec, text=text))
    return out


def write_in_channel(text: str, subs: dict[str, dict[str, float]], rng: random.Random) -> str:
    """`text` written the way a learnt channel writes (`model.reading.Channel.subs`: intended
    letter -> {observed: probability}): each letter is swapped with those probabilities, upper
    case as its lower-case letter. Harmless text written in an evasion is the negative that
    keeps post-training from learning "unusual writing is harmful"."""
    out = []
    for ch in text:
        swaps = subs.get(ch.lower())
        if swaps:
            u = rng.random()
            for observed, p in swaps.items():
                if u < p:
                    ch = observed
                    break
                u -= p
        out.append(ch)
    return "".join(out)


def iter_sources(texts: list[BenignText]) -> Iterator[tuple[str, int]]:
    """(generator:locale, count) of `texts`, for cards."""
    counts: dict[str, int] = {}
    for t in texts:
        key = t.source.rsplit(":", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    yield from sorted(counts.items())


if __name__ == "__main__":
    for t in benign_texts(int(sys.argv[1]) if len(sys.argv) > 1 else 8):
        print(f"{t.source:28} {t.text}")
