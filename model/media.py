"""An item's media on the model side: decode each image or frame, run the cheap signals on
each, and combine them into the one item the backend scores (one decision over 1..N media).

A single image is the N = 1 case and comes out exactly as before: its own signals, and a
`ScoringInput` with no `media` (the prompt's plain OCR hint). Several media keep their own OCR
text (the prompt labels each: 'Image 2 text: "..."'); the item's OCR text, stored with the
prediction for the card and search, is the labelled lines joined, and its NSFW score the
highest of its media (the card blurs each medium on its own score).

    images, signals = decode_and_signal(store, ["ab12...", "cd34..."], ocr=True, nsfw=True)
    inp = build_input(item_id, text, images, signals, labels, ocr_hint=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from model.backends import MediumInput, ScoringInput
from model.signals import Signals, compute_signals

if TYPE_CHECKING:
    from PIL.Image import Image

    from storage.blobs import BlobStore


def decode_and_signal(
    store: BlobStore, shas: Sequence[str], *, ocr: bool, nsfw: bool, engine: str = "auto"
) -> tuple[list[Image], list[Signals]]:
    """Each stored view decoded and its signals computed, in order. Raises on a view that does
    not decode, naming its position (the item is charged, as for a single bad image)."""
    from storage.images import open_view_image

    images: list[Image] = []
    signals: list[Signals] = []
    for n, sha in enumerate(shas, start=1):
        try:
            image = open_view_image(store, sha)
        except Exception as exc:
            if len(shas) == 1:
                raise
            raise type(exc)(f"medium {n}: {exc}") from exc
        images.append(image)
        signals.append(compute_signals(image, ocr=ocr, nsfw=nsfw, engine=engine))  # type: ignore[arg-type]
    return images, signals


def combined_ocr_text(labels: Sequence[str], texts: Sequence[str | None]) -> str:
    """The item's OCR text from its media's: 'Image 2 text: ...' lines, empty ones left out."""
    return "\n".join(f"{label} text: {t}" for label, t in zip(labels, texts, strict=True) if t)


def combine_signals(per_medium: Sequence[Signals], labels: Sequence[str]) -> Signals:
    """The item's signals from its media's: the same object for N = 1."""
    if len(per_medium) == 1:
        return per_medium[0]
    texts = [s.ocr_text for s in per_medium]
    ocr_text = None
    if any(t is not None for t in texts):
        ocr_text = combined_ocr_text(labels, texts)
    scores = [s.nsfw for s in per_medium if s.nsfw is not None]
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    for label, s in zip(labels, per_medium, strict=True):
        for name, ms in s.timings_ms.items():
            timings[name] = timings.get(name, 0.0) + ms
        for name, err in s.errors.items():
            errors[name] = f"{label}: {err}"
    return Signals(ocr_text, max(scores) if scores else None, timings, errors)


def build_input(
    item_id: int,
    text: str | None,
    images: Sequence[Image],
    per_medium: Sequence[Signals],
    labels: Sequence[str],
    *,
    ocr_hint: bool,
) -> ScoringInput:
    """What the backend sees for one item. Without `ocr_hint` no OCR goes into the prompt."""
    combined = combine_signals(per_medium, labels)
    signals = combined.as_verdict_signals()
    media: tuple[MediumInput, ...] = ()
    if len(images) > 1:
        media = tuple(
            MediumInput(image, s.ocr_text if ocr_hint else None, label)
            for image, s, label in zip(images, per_medium, labels, strict=True)
        )
        signals["media_nsfw"] = [s.nsfw for s in per_medium]
    return ScoringInput(
        image=images[0],
        text=text,
        ocr_text=combined.ocr_text if ocr_hint else None,
        item_id=item_id,
        signals=signals,
        media=media,
    )
