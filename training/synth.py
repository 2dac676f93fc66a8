"""SynthMod: a deterministic synthetic moderation data set with ground-truth labels.

Renders images for the text-bearing policy categories (scam_fraud, illegal_ads, drugs,
hate_extremism with invented groups and slogans, self_harm, harassment, privacy_pii with fake
numbers) and benign images (menus, greetings, notices, labels, and scikit-image photos), in
English, Korean and Chinese, with adversarial variants. Writes `images/` and a JSONL manifest
that `warden ingest` reads; each line also carries `rendered_text` (the exact text drawn, wrapped
lines joined by newlines: the OCR hint the demo model trains on), `variant`, `font`, `lang`,
`layout` and `family` (the phrase template, for held-out splits).

The same seed gives byte-identical images and manifest. Trainers can skip the disk:
`for image, record in iter_samples(1000, seed=0): ...`.

Run: warden synth --out data/synth --n 2000 --seed 0 [--variants leetspeak] [--lang ko]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from storage.errors import WardenError
from training import synth_phrases as phrases
from training import synth_render as render
from training.synth_text import LATIN_ONLY, TEXT_TRANSFORMS

log = logging.getLogger(__name__)

SYNTH_VERSION = 1
MANIFEST = "manifest.jsonl"
SAFE = "safe"

# In policy order; "safe" (no category) is selected with the same --categories flag.
TEXT_CATEGORIES: tuple[str, ...] = (
    "drugs",
    "hate_extremism",
    "self_harm",
    "scam_fraud",
    "illegal_ads",
    "harassment",
    "privacy_pii",
)
IMAGE_VARIANTS: tuple[str, ...] = (
    "rotation",
    "perspective",
    "blur",
    "noise",
    "low_contrast",
    "busy_background",
)
TEXT_VARIANTS: tuple[str, ...] = tuple(TEXT_TRANSFORMS)
VARIANTS: tuple[str, ...] = ("clean", *IMAGE_VARIANTS, *TEXT_VARIANTS)
LANGS: tuple[str, ...] = ("en", "ko", "zh")

# Default mix; a --variants / --lang / --categories selection renormalises over what it keeps.
VARIANT_WEIGHTS: dict[str, float] = {"clean": 0.6} | {v: 0.04 for v in VARIANTS[1:]}
LANG_WEIGHTS: dict[str, float] = {"en": 0.7, "ko": 0.15, "zh": 0.15}
CATEGORY_WEIGHTS: dict[str, float] = {SAFE: 0.25} | {c: 0.75 / 7 for c in TEXT_CATEGORIES}
MULTI_LABEL_SHARE = 0.1  # of violating samples: two categories (scam + PII, drugs + ads, ...)
PHOTO_SHARE = 0.35  # of benign samples: a scikit-image photo, captioned half of the time
MEME_SHARE = 0.12  # of text samples: drawn over a photo
POST_TEXT_SHARE = 0.05
_LAYOUTS = {"poster": 0.33, "card": 0.2, "chat": 0.2, "note": 0.15}

ImageFormat = Literal["png", "jpeg"]


@dataclass(frozen=True)
class SampleSpec:
    """Everything that decides one image; `render_sample(spec)` is a pure function of it."""

    index: int
    seed: int  # this sample's own seed: text transform and rendering draw from it
    labels: tuple[str, ...]  # policy category ids; () is benign
    family: str
    lang: str
    base_text: str  # the phrase before any text-level variant ("" for a bare photo)
    text: str  # the phrase to draw
    variant: str
    font: str
    layout: str
    size: int = 448
    photo: str | None = None
    post_text: str = ""  # text posted beside the image; never changes the labels


@dataclass(frozen=True)
class SynthReport:
    out: Path
    manifest: Path
    n: int
    seed: int
    seconds: float
    by_label: dict[str, int]
    by_variant: dict[str, int]
    by_lang: dict[str, int]


def _pick(weights: dict[str, float], u: float) -> str:
    total = sum(weights.values())
    acc = 0.0
    for key, weight in weights.items():
        acc += weight / total
        if u < acc:
            return key
    return next(reversed(weights))


def _choose(items: Sequence[Any], u: float) -> Any:
    return items[min(int(u * len(items)), len(items) - 1)]


def _select(given: Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    if not given:
        return list(known)
    wanted = [g.strip() for item in given for g in item.split(",") if g.strip()]
    unknown = [g for g in wanted if g not in known]
    if unknown:
        raise WardenError(f"unknown {what} {unknown[0]!r}; choose from: {', '.join(known)}")
    return [k for k in known if k in wanted]


@dataclass(frozen=True)
class _Plan:
    variants: dict[str, float]
    categories: dict[str, float]
    langs: dict[str, float]
    size: int


def _plan(
    variants: Sequence[str] | None,
    categories: Sequence[str] | None,
    langs: Sequence[str] | None,
    size: int,
) -> _Plan:
    if not 64 <= size <= 4096:
        raise WardenError(f"--size {size} is outside 64..4096 pixels")
    v = _select(variants, VARIANTS, "variant")
    c = _select(categories, (SAFE, *TEXT_CATEGORIES), "category")
    chosen = _select(langs, LANGS, "language")
    usable = [lang for lang in chosen if render.fonts_for(lang)]
    if langs and len(usable) < len(chosen):
        missing = sorted(set(chosen) - set(usable))
        raise WardenError(f"no font for {', '.join(missing)} here; install fonts-noto-cjk")
    if not usable:
        raise WardenError("no usable font found for any language (install fonts-dejavu-core)")
    if set(v) <= LATIN_ONLY and "en" not in usable:
        raise WardenError(f"variants {', '.join(v)} change Latin letters only; add --lang en")
    return _Plan(
        variants={k: VARIANT_WEIGHTS[k] for k in v},
        categories={k: CATEGORY_WEIGHTS[k] for k in c},
        langs={k: LANG_WEIGHTS[k] for k in usable},
        size=size,
    )


def _templates(labels: tuple[str, ...], lang: str) -> list[phrases.Template]:
    return [t for t in phrases.TEMPLATES if t.labels == labels and t.lang == lang]


def _sample_seed(seed: int, index: int) -> int:
    digest = hashlib.sha256(f"synthmod:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _make_spec(plan: _Plan, seed: int, index: int) -> SampleSpec:
    sample_seed = _sample_seed(seed, index)
    # Content draws come first and in a fixed count, so the phrase, font and photo of sample i
    # do not depend on which variant it gets (a clean twin renders the same content).
    content = random.Random(f"content:{sample_seed}")
    u = [content.random() for _ in range(11)]
    u_variant = random.Random(f"variant:{sample_seed}").random()
    variant = _pick(plan.variants, u_variant)
    category = _pick(plan.categories, u[0])
    lang = _pick(plan.langs, u[2])
    if variant in LATIN_ONLY:
        if "en" in plan.langs:
            lang = "en"
        else:  # leetspeak/homoglyphs cannot touch Hangul or Hanzi: another selected variant
            variant = _pick(
                {k: w for k, w in plan.variants.items() if k not in LATIN_ONLY}, u_variant
            )
    photo: str | None = None
    layout = _pick(_LAYOUTS, u[6])
    post_text = (
        _choose(phrases.POST_TEXTS, u[7] / POST_TEXT_SHARE) if u[7] < POST_TEXT_SHARE else ""
    )

    if category == SAFE and u[4] < PHOTO_SHARE:
        photo = _choose(render.PHOTOS, u[9])
        layout, labels, family = "photo", (), f"photo.{photo}"
        needs_text = variant in TEXT_VARIANTS or variant == "busy_background"
        caption = None
        if needs_text or u[5] < 0.5:
            captions = [t for t in phrases.CAPTION_TEMPLATES if t.lang == lang]
            caption = _choose(captions, u[3])
        base_text = caption.text if caption else ""
    else:
        labels = () if category == SAFE else (category,)
        if labels and u[1] < MULTI_LABEL_SHARE:
            combos = [
                t.labels
                for t in phrases.TEMPLATES
                if len(t.labels) > 1
                and category in t.labels
                and set(t.labels) <= set(plan.categories)
                and t.lang == lang
            ]
            if combos:
                labels = _choose(sorted(set(combos)), u[10])
        candidates = _templates(labels, lang) or _templates(labels, "en")
        template = _choose(candidates, u[3])
        lang, family = template.lang, template.family
        base_text = phrases.fill_template(
            template.text, lang, random.Random(f"slots:{sample_seed}")
        )
        if u[4] < MEME_SHARE:
            layout, photo = "meme", _choose(render.PHOTOS, u[9])

    font = _choose(render.fonts_for(lang), u[8]).name
    spec = SampleSpec(
        index=index,
        seed=sample_seed,
        labels=tuple(c for c in TEXT_CATEGORIES if c in labels),
        family=family,
        lang=lang,
        base_text=base_text,
        text=base_text,
        variant="clean",
        font=font,
        layout=layout,
        size=plan.size,
        photo=photo,
        post_text=post_text,
    )
    return with_variant(spec, variant)


def with_variant(spec: SampleSpec, variant: str) -> SampleSpec:
    """The same sample under another variant (text-level ones rewrite `text` from `base_text`).

    Raises ValueError when the variant cannot change this sample (leetspeak on Hangul text, a
    text variant on a photo without a caption).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    text = spec.base_text
    if variant in TEXT_TRANSFORMS:
        if not text:
            raise ValueError(f"variant {variant} needs text; sample {spec.index} has none")
        text = TEXT_TRANSFORMS[variant](text, random.Random(f"text:{spec.seed}"))
    return dataclasses.replace(spec, variant=variant, text=text)


def make_specs(
    n: int,
    seed: int,
    variants: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    langs: Sequence[str] | None = None,
    size: int = 448,
    start: int = 0,
) -> list[SampleSpec]:
    """Specs for samples `start .. start+n-1`; sample i is the same whatever n is."""
    if n < 0:
        raise WardenError("--n must be zero or more")
    plan = _plan(variants, categories, langs, size)
    return [_make_spec(plan, seed, i) for i in range(start, start + n)]


def _layout(spec: SampleSpec) -> str:
    if spec.variant == "busy_background":
        return "busy"
    if spec.variant == "low_contrast" and spec.layout != "photo":
        return "poster"
    return spec.layout


def _external_id(spec: SampleSpec) -> str:
    key = json.dumps(dataclasses.asdict(spec), sort_keys=True, ensure_ascii=False)
    return f"synth-{spec.index:06d}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def render_sample(spec: SampleSpec) -> tuple[Image.Image, dict[str, Any]]:
    """The image and its manifest record (every field but `path`)."""
    layout = _layout(spec)
    photo = spec.photo if layout in ("photo", "meme", "busy") else None
    image, drawn = render.render_image(
        spec.text, layout, spec.variant, spec.font, spec.size, spec.seed, photo=photo
    )
    record = {
        "text": spec.post_text,
        "external_id": _external_id(spec),
        "labels": list(spec.labels),
        "rendered_text": drawn,
        "variant": spec.variant,
        "font": spec.font,
        "lang": spec.lang,
        "family": spec.family,
        "layout": layout,
    }
    return image, record


def iter_samples(
    n: int,
    seed: int,
    variants: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    langs: Sequence[str] | None = None,
    size: int = 448,
    start: int = 0,
) -> Iterator[tuple[Image.Image, dict[str, Any]]]:
    """Render in memory, for trainers: yields (image, record) like the manifest's lines."""
    for spec in make_specs(n, seed, variants, categories, langs, size, start):
        yield render_sample(spec)


def generate(
    out: Path,
    n: int,
    seed: int,
    variants: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    langs: Sequence[str] | None = None,
    size: int = 448,
    progress: bool = True,
    image_format: ImageFormat = "png",
    overwrite: bool = False,
) -> SynthReport:
    """Render `n` samples into `out/images/` and write `out/manifest.jsonl` and `out/synth.json`."""
    from tqdm import tqdm

    if image_format not in ("png", "jpeg"):
        raise WardenError(f"--format must be png or jpeg, not {image_format!r}")
    out = Path(out)
    manifest = out / MANIFEST
    if manifest.exists() and not overwrite:
        raise WardenError(f"{manifest} already exists; choose another --out or pass --overwrite")
    specs = make_specs(n, seed, variants, categories, langs, size)
    (out / "images").mkdir(parents=True, exist_ok=True)
    ext = "png" if image_format == "png" else "jpg"
    started = time.perf_counter()
    by_label: Counter[str] = Counter()
    by_variant: Counter[str] = Counter()
    by_lang: Counter[str] = Counter()
    tmp = manifest.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for spec in tqdm(specs, desc="synth", unit="img", disable=not progress):
            image, record = render_sample(spec)
            rel = f"images/{spec.index:06d}.{ext}"
            if image_format == "png":
                image.save(out / rel, format="PNG", compress_level=1)
            else:
                image.save(out / rel, format="JPEG", quality=92)
            fh.write(json.dumps({"path": rel, **record}, ensure_ascii=False) + "\n")
            by_label.update(spec.labels or (SAFE,))
            by_variant[spec.variant] += 1
            by_lang[spec.lang] += 1
    tmp.replace(manifest)
    report = SynthReport(
        out=out,
        manifest=manifest,
        n=len(specs),
        seed=seed,
        seconds=time.perf_counter() - started,
        by_label=dict(sorted(by_label.items())),
        by_variant=dict(sorted(by_variant.items())),
        by_lang=dict(sorted(by_lang.items())),
    )
    info = {
        "generator": "synthmod",
        "version": SYNTH_VERSION,
        "seed": seed,
        "n": report.n,
        "size": size,
        "format": image_format,
        "variants": list(_select(variants, VARIANTS, "variant")),
        "categories": list(_select(categories, (SAFE, *TEXT_CATEGORIES), "category")),
        "langs": sorted(report.by_lang),
        "fonts": sorted({s.font for s in specs}),
        "by_label": report.by_label,
        "by_variant": report.by_variant,
        "by_lang": report.by_lang,
    }
    (out / "synth.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    log.info("synth: %d images in %.1f s -> %s", report.n, report.seconds, manifest)
    return report
