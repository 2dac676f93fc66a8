"""Rendering for SynthMod: fonts, text layout that always fits, backgrounds, image transforms.

`render_image` is a pure function of its arguments (all randomness comes from `seed`), so the
same call gives byte-identical pixels. Fonts are found at run time: DejaVu and Liberation faces
for Latin text, Noto CJK (Debian `fonts-noto-cjk`, else the `noto-cjk-sans-otc` wheel) for
Korean and Chinese; a missing face is skipped, never guessed.

Used by `training.synth`; run `warden synth --help`.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]

_LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Italic.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
)
_CJK_DIRS = ("/usr/share/fonts/opentype/noto", "/usr/share/fonts/opentype/noto-cjk")
_CJK_FILES = (
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJK-Bold.ttc",
    "NotoSerifCJK-Regular.ttc",
    "NotoSerifCJK-Bold.ttc",
)
_PROBE = {"en": "Ag", "ko": "한글", "zh": "汉字"}
_CJK_SUFFIX = {"KR": "ko", "SC": "zh"}

# Natural photos that ship inside scikit-image (no download), and its grey textures.
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "cat",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "coins",
    "moon",
)
_TEXTURES = ("brick", "grass", "gravel")

_LIGHT: tuple[tuple[RGB, RGB], ...] = (
    ((255, 255, 255), (20, 20, 20)),
    ((250, 240, 200), (60, 30, 10)),
    ((230, 240, 255), (10, 30, 90)),
    ((255, 230, 230), (120, 0, 0)),
    ((235, 255, 235), (0, 70, 20)),
)
_DARK: tuple[tuple[RGB, RGB], ...] = (
    ((20, 20, 30), (255, 255, 255)),
    ((150, 0, 0), (255, 240, 0)),
    ((0, 60, 140), (255, 255, 255)),
    ((30, 30, 30), (255, 210, 0)),
)
_BUBBLES: tuple[tuple[RGB, RGB], ...] = (
    ((0, 132, 255), (255, 255, 255)),
    ((229, 229, 234), (0, 0, 0)),
    ((220, 248, 198), (0, 0, 0)),
)


@dataclass(frozen=True)
class FontFace:
    name: str  # e.g. "DejaVuSans-Bold", "NotoSansCJKKR-Regular"
    path: str
    index: int
    langs: frozenset[str]


def _face_name(font: ImageFont.FreeTypeFont) -> str:
    family, style = font.getname()
    return f"{(family or 'font').replace(' ', '')}-{(style or 'Regular').replace(' ', '')}"


def _covers(font: ImageFont.FreeTypeFont, probe: str) -> bool:
    # A face without the glyph draws its .notdef box ("tofu"), the same for every missing char.
    def bitmap(ch: str) -> tuple[tuple[int, int], tuple[int, ...]]:
        mask = font.getmask(ch)
        return mask.size, tuple(mask)

    tofu = bitmap("\U0010fffd")
    return all(bitmap(ch) != tofu for ch in probe)


def _cjk_paths() -> list[Path]:
    paths = [Path(d) / f for d in _CJK_DIRS for f in _CJK_FILES]
    try:
        import noto_cjk_sans_otc

        paths.append(Path(str(noto_cjk_sans_otc.FONT_PATH)))
    except ImportError:
        pass
    return [p for p in paths if p.is_file()]


@functools.cache
def available_fonts() -> tuple[FontFace, ...]:
    """Every usable face on this machine, Latin first; logged once when CJK is missing."""
    faces: dict[str, FontFace] = {}
    for path in _LATIN_FONTS:
        if Path(path).is_file():
            font = ImageFont.truetype(path, 24)
            if _covers(font, _PROBE["en"]):
                faces.setdefault(
                    _face_name(font), FontFace(_face_name(font), path, 0, frozenset({"en"}))
                )
    for path in _cjk_paths():
        for index in range(8):
            try:
                font = ImageFont.truetype(str(path), 24, index=index)
            except OSError:
                break
            family = font.getname()[0] or ""
            lang = _CJK_SUFFIX.get(family.rsplit(" ", 1)[-1])
            if lang is None or "Mono" in family or not _covers(font, _PROBE[lang]):
                continue
            name = _face_name(font)
            faces.setdefault(name, FontFace(name, str(path), index, frozenset({lang})))
    found = tuple(faces.values())
    if not any("ko" in f.langs for f in found):
        log.warning("no Korean font found (install fonts-noto-cjk or noto-cjk-sans-otc)")
    return found


def fonts_for(lang: str) -> list[FontFace]:
    return [f for f in available_fonts() if lang in f.langs]


@functools.lru_cache(maxsize=1024)
def load_font(face_name: str, px: int) -> ImageFont.FreeTypeFont:
    for face in available_fonts():
        if face.name == face_name:
            return ImageFont.truetype(face.path, px, index=face.index)
    raise KeyError(f"font {face_name!r} is not installed here")


# ------------------------------------------------------------------------- text layout

# Runs of non-space characters are words; Han and full-width characters break anywhere
# (Chinese has no spaces), Hangul words break at spaces like Latin ones.
_TOKEN = re.compile(r"\s+|[^\s\u2e80-\u9fff\uff00-\uffef]+|.")


@dataclass(frozen=True)
class Fitted:
    font: ImageFont.FreeTypeFont
    lines: tuple[str, ...]
    line_h: int

    @property
    def height(self) -> int:
        return self.line_h * len(self.lines)

    def width(self) -> int:
        return max((int(self.font.getlength(line)) for line in self.lines), default=0)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy wrap: Latin words stay whole unless wider than the box; CJK breaks per character."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for token in _TOKEN.findall(para):
            candidate = line + token
            if font.getlength(candidate) <= width or not line.strip():
                line = candidate
            else:
                lines.append(line.rstrip())
                line = "" if token.isspace() else token
            while font.getlength(line) > width and len(line) > 1:
                # A single token wider than the box (a URL, a wallet id): break it by characters.
                cut = len(line) - 1
                while cut > 1 and font.getlength(line[:cut]) > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line.rstrip())
    return [ln.lstrip() if i else ln for i, ln in enumerate(lines)] or [""]


def fit_text(text: str, face: str, box_w: int, box_h: int, max_px: int, min_px: int = 9) -> Fitted:
    """The largest font size (from `max_px` down) whose wrapped lines fit the box."""
    px = max(max_px, min_px)
    while True:
        font = load_font(face, px)
        ascent, descent = font.getmetrics()
        fitted = Fitted(font, tuple(_wrap(text, font, box_w)), int((ascent + descent) * 1.15))
        if (fitted.height <= box_h and fitted.width() <= box_w) or px <= 4:
            return fitted
        # Below min_px only when the text cannot fit otherwise (never for the phrase bank).
        px = max(min_px, int(px * 0.9)) if px > min_px else px - 1


def draw_lines(
    draw: ImageDraw.ImageDraw,
    fitted: Fitted,
    box: tuple[int, int, int, int],
    fill: tuple[int, ...],
    align: str = "center",
    stroke: int = 0,
    stroke_fill: tuple[int, ...] | None = None,
) -> None:
    """Draw the lines centred vertically in `box`, aligned left or centre horizontally."""
    x0, y0, x1, y1 = box
    y = y0 + max(0, (y1 - y0 - fitted.height) // 2)
    for line in fitted.lines:
        w = fitted.font.getlength(line)
        x = x0 if align == "left" else x0 + (x1 - x0 - w) / 2
        draw.text(
            (x, y), line, font=fitted.font, fill=fill, stroke_width=stroke, stroke_fill=stroke_fill
        )
        y += fitted.line_h


# ------------------------------------------------------------------------- backgrounds


@functools.cache
def _skimage(name: str) -> Image.Image:
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)())
    image = image.convert("RGB") if image.mode != "L" else image
    image.thumbnail((640, 640), Image.Resampling.BILINEAR)  # retina is 1411 px: shrink once
    return image


def photo_crop(name: str, size: int, rng: random.Random) -> Image.Image:
    """A random square crop of a scikit-image photo, flipped and re-lit a little."""
    src = _skimage(name).convert("RGB")
    side = int(min(src.size) * rng.uniform(0.65, 1.0))
    x = rng.randint(0, src.width - side)
    y = rng.randint(0, src.height - side)
    image = src.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    return ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))


def _jitter(color: RGB, rng: random.Random, amount: int = 12) -> RGB:
    r, g, b = (min(255, max(0, c + rng.randint(-amount, amount))) for c in color)
    return (r, g, b)


def _plain_background(size: int, color: RGB, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (size, size), color)
    if rng.random() < 0.4:  # vertical gradient towards a shifted shade
        other = Image.new("RGB", (size, size), _jitter(color, rng, 40))
        mask = Image.linear_gradient("L").resize((size, size))
        image = Image.composite(other, image, mask)
    return image


def busy_background(size: int, rng: random.Random) -> Image.Image:
    """Clutter behind the text: a tinted texture, a photo, or a heap of random shapes."""
    kind = rng.choice(("texture", "photo", "shapes"))
    if kind == "photo":
        return photo_crop(rng.choice(PHOTOS), size, rng)
    if kind == "texture":
        grey = _skimage(rng.choice(_TEXTURES)).convert("L").resize((size, size))
        dark = tuple(rng.randint(0, 120) for _ in range(3))
        light = tuple(rng.randint(130, 255) for _ in range(3))
        return ImageOps.colorize(grey, black=dark, white=light)
    image = Image.new("RGB", (size, size), tuple(rng.randint(0, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(30, 60)):
        color = tuple(rng.randint(0, 255) for _ in range(3))
        x, y = rng.randint(-size // 4, size), rng.randint(-size // 4, size)
        w, h = rng.randint(size // 20, size // 3), rng.randint(size // 20, size // 3)
        shape = rng.random()
        if shape < 0.4:
            draw.ellipse((x, y, x + w, y + h), fill=color)
        elif shape < 0.7:
            draw.rectangle((x, y, x + w, y + h), fill=color)
        else:
            draw.line((x, y, x + w, y + h), fill=color, width=rng.randint(2, 8))
    return image


# ---------------------------------------------------------------- image-level transforms


def _perspective_coeffs(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> list[float]:
    # PIL maps each output pixel back to the input: solve the 8 homography terms for dst -> src.
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return [float(c) for c in np.linalg.solve(np.array(rows), np.array(rhs))]


def rotate(layer: Image.Image, rng: random.Random, fill: tuple[int, ...]) -> Image.Image:
    angle = rng.choice((-1, 1)) * rng.uniform(8, 35)
    return layer.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=fill)


def perspective(layer: Image.Image, rng: random.Random, fill: tuple[int, ...]) -> Image.Image:
    w, h = layer.size
    d = 0.2 * min(w, h)
    src = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    # Pull two adjacent corners in hard and the others a little: a page seen at an angle.
    strong = rng.randrange(4)
    dst = []
    for i, (x, y) in enumerate(src):
        k = d * (rng.uniform(0.6, 1.0) if i in (strong, (strong + 1) % 4) else rng.uniform(0, 0.3))
        dst.append(
            (
                x + (k if x == 0 else -k),
                y + (k * rng.uniform(0, 0.5) if y == 0 else -k * rng.uniform(0, 0.5)),
            )
        )
    coeffs = _perspective_coeffs(src, dst)
    return layer.transform(
        layer.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC, fillcolor=fill
    )


def blur(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(1.2, 2.4) * image.width / 448))


def add_noise(image: Image.Image, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(12, 30)
    pixels = np.asarray(image, dtype=np.float32)  # [H, W, 3]
    pixels = pixels + rng.standard_normal(pixels.shape, dtype=np.float32) * sigma
    speckle = rng.random(pixels.shape[:2]) < 0.005  # salt and pepper on 0.5% of pixels
    pixels[speckle] = rng.choice([0.0, 255.0], size=(int(speckle.sum()), 1))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# ------------------------------------------------------------------------- composition

LAYOUTS = ("poster", "card", "chat", "note", "meme", "photo", "busy")


def _contrast_color(image: Image.Image) -> tuple[RGB, RGB]:
    grey = ImageOps.grayscale(image.resize((16, 16)))
    mean = sum(grey.getdata()) / 256
    return ((255, 255, 255), (0, 0, 0)) if mean < 128 else ((0, 0, 0), (255, 255, 255))


def render_image(
    text: str,
    layout: str,
    variant: str,
    face: str,
    size: int,
    seed: int,
    photo: str | None = None,
) -> tuple[Image.Image, str]:
    """Draw `text` in `layout` with `variant`'s image-level transform.

    Returns the RGB image and the exact text drawn (wrapped lines joined by newlines).
    """
    rng = random.Random(f"render:{seed}")
    s = size / 448
    margin = int(size * {"rotation": 0.17, "perspective": 0.12}.get(variant, 0.07))
    inner = (margin, margin, size - margin, size - margin)
    fg = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(fg)
    fitted: Fitted | None = None

    if layout in ("photo", "meme") and photo is not None:
        bg = photo_crop(photo, size, rng)
    elif layout == "busy":
        bg = busy_background(size, rng)
    elif layout == "note":
        bg = Image.new("RGB", (size, size), _jitter((250, 246, 228), rng, 6))
        ruled = ImageDraw.Draw(bg)
        step = int(30 * s)
        for y in range(step, size, step):
            ruled.line((0, y, size, y), fill=(180, 200, 230), width=max(1, int(s)))
    else:
        palette = _LIGHT if variant == "low_contrast" or rng.random() < 0.6 else _DARK
        bg_color, fg_color = rng.choice(palette)
        bg = _plain_background(size, _jitter(bg_color, rng), rng)

    if text:
        w, h = inner[2] - inner[0], inner[3] - inner[1]
        if layout == "poster":
            if variant == "low_contrast":
                # Text a few levels off its background, then the whole picture flattened.
                base = bg.getpixel((size // 2, size // 2))
                delta = rng.choice((-1, 1)) * rng.randint(22, 40)
                fg_color = tuple(min(255, max(0, c + delta)) for c in base)  # type: ignore[assignment]
            fitted = fit_text(text, face, w, h, int(rng.randint(34, 60) * s))
            draw_lines(draw, fitted, inner, fg_color + (255,))
        elif layout == "card":
            pad = int(18 * s)
            fitted = fit_text(text, face, w - 2 * pad, h - 2 * pad, int(rng.randint(24, 42) * s))
            card_h = fitted.height + 2 * pad
            top = inner[1] + rng.randint(0, max(0, h - card_h))
            card = (inner[0], top, inner[2], top + card_h)
            card_fill = (255, 255, 255) if bg_color != (255, 255, 255) else (245, 245, 245)
            draw.rounded_rectangle(
                card, radius=int(14 * s), fill=card_fill + (255,), outline=(150, 150, 150, 255)
            )
            text_color = fg_color if fg_color[0] + fg_color[1] + fg_color[2] < 400 else (20, 20, 20)
            draw_lines(
                draw,
                fitted,
                (card[0] + pad, card[1] + pad, card[2] - pad, card[3] - pad),
                text_color + (255,),
                align="left",
            )
        elif layout == "chat":
            pad = int(14 * s)
            bubble_color, text_color = rng.choice(_BUBBLES)
            max_w = int(w * rng.uniform(0.7, 0.9))
            fitted = fit_text(
                text, face, max_w - 2 * pad, h - 2 * pad, int(rng.randint(22, 34) * s)
            )
            bw, bh = fitted.width() + 2 * pad, fitted.height + 2 * pad
            left = inner[0] if rng.random() < 0.5 else inner[2] - bw
            top = inner[1] + rng.randint(0, max(0, h - bh))
            bubble = (left, top, left + bw, top + bh)
            draw.rounded_rectangle(bubble, radius=int(18 * s), fill=bubble_color + (255,))
            draw_lines(
                draw,
                fitted,
                (left + pad, top + pad, left + bw - pad, top + bh - pad),
                text_color + (255,),
                align="left",
            )
        elif layout == "note":
            fitted = fit_text(text, face, w, h, int(rng.randint(24, 40) * s))
            color = rng.choice(((20, 30, 110), (25, 25, 25), (90, 20, 20)))
            top = inner[1] + rng.randint(0, max(0, h - fitted.height))
            draw_lines(
                draw,
                fitted,
                (inner[0], top, inner[2], top + fitted.height),
                color + (255,),
                align="left",
            )
        elif layout in ("meme", "photo"):
            # Caption over a photo: a dark band, or white text with a black outline (meme style).
            band_h = int(h * (0.45 if layout == "meme" else 0.3))
            fitted = fit_text(text, face, w, band_h, int(rng.randint(26, 48) * s))
            top = inner[1] if rng.random() < 0.4 else inner[3] - band_h
            box = (inner[0], top, inner[2], top + band_h)
            if rng.random() < 0.5:
                pad = int(8 * s)
                text_top = box[1] + (band_h - fitted.height) // 2
                band = (box[0] - pad, text_top - pad, box[2] + pad, text_top + fitted.height + pad)
                draw.rectangle(band, fill=(0, 0, 0, 170))
                draw_lines(draw, fitted, box, (255, 255, 255, 255))
            else:
                draw_lines(
                    draw,
                    fitted,
                    box,
                    (255, 255, 255, 255),
                    stroke=max(2, int(3 * s)),
                    stroke_fill=(0, 0, 0, 255),
                )
        elif layout == "busy":
            fitted = fit_text(text, face, w, h, int(rng.randint(34, 60) * s))
            fill, outline = _contrast_color(bg)
            stroke = max(1, int(rng.choice((0, 2, 3)) * s)) if rng.random() < 0.6 else 0
            draw_lines(
                draw, fitted, inner, fill + (255,), stroke=stroke, stroke_fill=outline + (255,)
            )
        else:
            raise ValueError(f"unknown layout {layout!r}")

    if variant in ("rotation", "perspective"):
        transform = rotate if variant == "rotation" else perspective
        if text:
            fg = transform(fg, rng, (0, 0, 0, 0))
        else:  # a bare photo: tilt the photo itself over a plain backdrop
            bg = transform(bg, rng, _jitter((200, 200, 200), rng, 50))
    image = Image.alpha_composite(bg.convert("RGBA"), fg).convert("RGB")
    if variant == "low_contrast":
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.45, 0.75))
    elif variant == "blur":
        image = blur(image, rng)
    elif variant == "noise":
        image = add_noise(image, seed)
    drawn = "\n".join(fitted.lines) if fitted is not None else ""
    return image, drawn
