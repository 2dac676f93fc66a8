"""The Review card's evidence overlay: boxes over the card's image where what drove the verdict
sits (model.regions: OCR lines the reader rewrote or that a flagged category's score rests on;
model.grounding: regions the model itself drew), each with its category as a label.

The boxes are absolutely positioned in percentages of the image, inside a frame sized to the
image's aspect ratio (so they stay on their text at any display size, blurred or revealed:
the blurred derivative keeps the view's proportions). OCR boxes are dashed, the model's solid.
Everything from the prediction is untrusted (OCR text, the model's reply): it goes through
`html.escape`, numbers are re-made as floats, and a malformed region is left out.

    pair = frame_for(card.regions, policy, lang="en")   # ("<div ...>", "...</div>") | None
    markup = pair[0] + '<img ...>' + pair[1]
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from storage.policy import Policy

SOURCES = ("ocr", "model")
MAX_REGIONS = 40  # a card shows at most this many boxes (the strongest first)
# The card's image is at most 512 px wide and 42vh tall (app/static/warden.css, .wd-img): the
# frame takes the largest size within both that keeps the image's proportions.
MAX_WIDTH_PX = 512
MAX_HEIGHT_VH = 42


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def valid_regions(raw: Any, position: int = 0) -> list[dict[str, Any]]:
    """The well-formed regions of medium `position` among a prediction's recorded ones
    (`signals["evidence_regions"]`), boxes clamped to their image; regions with a category
    first, heaviest first."""
    if not isinstance(raw, list):
        return []
    out = []
    for r in raw:
        if not isinstance(r, dict) or r.get("position", 0) != position:
            continue
        if r.get("source") not in SOURCES:
            continue
        box, size = r.get("box"), r.get("image_size")
        if not isinstance(box, list) or len(box) != 4:
            continue
        if not isinstance(size, list) or len(size) != 2:
            continue
        nums = [_number(v) for v in box]
        w, h = _number(size[0]), _number(size[1])
        if any(n is None for n in nums) or not w or not h or w <= 0 or h <= 0:
            continue
        x0, y0, x1, y1 = (float(n) for n in nums)  # type: ignore[arg-type]
        x0, x1 = sorted((min(max(x0, 0.0), w), min(max(x1, 0.0), w)))
        y0, y1 = sorted((min(max(y0, 0.0), h), min(max(y1, 0.0), h)))
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue
        category = r.get("category")
        weight = _number(r.get("weight"))
        out.append(
            {
                "box": (x0, y0, x1, y1),
                "size": (w, h),
                "source": r["source"],
                "category": category if isinstance(category, str) else None,
                "text": r.get("text") if isinstance(r.get("text"), str) else "",
                "read_as": r.get("read_as") if isinstance(r.get("read_as"), str) else "",
                "weight": weight or 0.0,
            }
        )
    out.sort(key=lambda r: (r["category"] is None, -r["weight"]))
    return out[:MAX_REGIONS]


def _label(region: dict[str, Any], titles: dict[str, str]) -> str:
    if region["category"]:
        return titles.get(region["category"], region["category"])
    if region["read_as"]:
        return "→ " + region["read_as"]
    return ""


def overlay_html(
    regions: list[dict[str, Any]], titles: dict[str, str], *, hide_text: bool = False
) -> str:
    """The boxes, positioned in percentages of the image ("" for no region). `hide_text`
    leaves the OCR text out (a graphic card's text stays hidden until revealed)."""
    if not regions:
        return ""
    e = html.escape
    # One box per place: an OCR line that is evidence for two categories and was rewritten by
    # the reader is drawn once, with its labels joined.
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in regions:
        if hide_text:
            r = {**r, "text": "", "read_as": ""}
        key = (r["source"], r["box"], r["size"])
        label = _label(r, titles)
        if key not in merged:
            merged[key] = {**r, "labels": [], "categories": []}
        m = merged[key]
        m["labels"] += [label] if label and label not in m["labels"] else []
        m["categories"] += [r["category"]] if r["category"] else []
        m["text"] = m["text"] or r["text"]
    boxes = []
    for r in merged.values():
        (x0, y0, x1, y1), (w, h) = r["box"], r["size"]
        style = (
            f"left:{100 * x0 / w:.2f}%;top:{100 * y0 / h:.2f}%;"
            f"width:{100 * (x1 - x0) / w:.2f}%;height:{100 * (y1 - y0) / h:.2f}%"
        )
        label = " · ".join(r["labels"])
        hint = r["text"] or label
        category = " ".join(r["categories"])
        boxes.append(
            f'<div class="wd-ev-box wd-ev-{r["source"]}" style="{style}" '
            f'data-source="{r["source"]}" data-category="{e(category, quote=True)}" '
            f'title="{e(hint, quote=True)}">'
            + (f'<span class="wd-ev-label">{e(label)}</span>' if label else "")
            + "</div>"
        )
    return f'<div class="wd-ev" aria-hidden="true">{"".join(boxes)}</div>'


def frame_for(
    regions: Any,
    policy: Policy,
    lang: str = "en",
    *,
    hide_text: bool = False,
    position: int = 0,
    width: str | None = None,
) -> tuple[str, str] | None:
    """(opening, closing) markup to put around the `<img>` of medium `position` (the card's
    image: the cover, 0): a frame of the image's proportions (`width`: CSS, the card's by
    default) and, after the image, its evidence boxes. None when there is no region to draw."""
    regions = valid_regions(regions, position)
    if not regions:
        return None
    w, h = regions[0]["size"]
    titles = {c.id: c.title_in(lang) for c in policy.categories}
    width = width or f"min(100%, {MAX_WIDTH_PX}px, calc({MAX_HEIGHT_VH}vh * {w / h:.4f}))"
    opening = f'<div class="wd-ev-frame" style="width:{width}">'
    return opening, overlay_html(regions, titles, hide_text=hide_text) + "</div>"


def latest_regions(session: Session, item_id: int) -> list[Any]:
    """The recorded regions of the item's latest prediction ([] when none)."""
    from sqlalchemy import select

    from storage.models import Prediction

    signals = session.scalar(
        select(Prediction.signals)
        .where(Prediction.item_id == item_id)
        .order_by(Prediction.id.desc())
        .limit(1)
    )
    regions = signals.get("evidence_regions") if isinstance(signals, dict) else None
    return regions if isinstance(regions, list) else []
