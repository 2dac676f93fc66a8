"""Evidence boxes to and from Label Studio: pre-annotations out, corrected boxes back.

Out (push): an item's evidence boxes (`evidence_boxes`) become RectangleLabels results of the
task's prediction, in Label Studio's units: x, y, width, height in percent of the image, with
`original_width`/`original_height` and the box's category as its one label. A project whose
config shows every image of a post / frame of a video (`<Image valueList="$images">`,
training.labelstudio.project) gets the boxes of every medium, each with `item_index` = its
`position`. A project set up before that and holding tasks (one `$image`; its tasks have no
list to show) gets the cover's boxes only; boxes on other media stay in Warden.

Back (pull, webhook): the annotation's rectangles are converted to pixels of their image (the
medium at the result's `item_index`, 0 when it has none: `original_width`/`original_height` of
the result, else that medium's stored size), clamped to it, and stored with the decision
(`meta["regions"]`, one entry per box and label):

    {"position": 0, "category": "drugs", "box": [x0, y0, x1, y1], "image_size": [w, h],
     "source": "label_studio", "ls_id": "wr0"}

A rectangle that cannot be read (missing or non-finite numbers, no area inside the image,
no size to convert with, an `item_index` that names no medium of the item, a label that is
not an exported category) is dropped and counted (`meta["regions_dropped"]`).

Where the boxes come from (`evidence_boxes`): the prediction's `signals["evidence_regions"]`
(model.regions: OCR lines that drove the verdict, `source` "ocr", and boxes a grounding
backend drew, `source` "model"), read by key so boxes of either source count as they land;
a prediction written before regions existed offers the OCR line boxes of each medium
(`item_media.ocr_boxes`) of a flagged item instead. A box tied to no category (a line the
reader rewrote) is offered under the item's highest-scoring flagged category: a guess the
annotator corrects, never a label of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from storage.media import Medium, media_of
from storage.models import Blob, Item, Prediction
from storage.policy import Policy

# model.regions.REGIONS_KEY: read by name, so this module needs nothing from the scorer.
EVIDENCE_KEY = "evidence_regions"
SOURCES = ("ocr", "model")
LS_SOURCE = "label_studio"
COVER = 0


def _size(value: Any) -> tuple[int, int] | None:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) and v >= 1 for v in value)
    ):
        return (int(value[0]), int(value[1]))
    return None


def clamp_box(box: Any, size: tuple[int, int]) -> list[float] | None:
    """[x0, y0, x1, y1] inside (w, h), rounded to 0.1 px; None when not four finite numbers
    or when nothing of it lies inside the image."""
    if not isinstance(box, list | tuple) or len(box) != 4:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
        return None
    if not all(math.isfinite(v) for v in box):
        return None
    w, h = size
    x0, x1 = sorted((float(box[0]), float(box[2])))
    y0, y1 = sorted((float(box[1]), float(box[3])))
    x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
    y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return [round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1)]


def _top_flagged(policy: Policy, pred: Prediction | None, allowed: set[str]) -> str | None:
    if pred is None:
        return None
    flagged = [c for c in policy.flagged(pred.scores or {}) if c in allowed]
    return max(flagged, key=lambda c: float((pred.scores or {}).get(c, 0.0)), default=None)


def cover_size(session: Session, item: Item) -> tuple[int, int] | None:
    """Pixels of the image a task shows (the item's view): the cover medium's stored size,
    else the view blob's."""
    return media_sizes(session, item)[COVER]


def media_sizes(session: Session, item: Item) -> list[tuple[int, int] | None]:
    """Pixels of each medium of the item, by position (None where unknown); the cover falls
    back to the view blob's size. Never empty: an item is at least its cover."""
    sizes: list[tuple[int, int] | None] = [m.image_size for m in media_of(session, item.id)]
    if not sizes:
        sizes = [None]
    if sizes[COVER] is None:
        blob = session.get(Blob, item.view_sha256 or item.blob_sha256)
        if blob is not None and blob.width and blob.height:
            sizes[COVER] = (int(blob.width), int(blob.height))
    return sizes


def evidence_boxes(
    session: Session,
    policy: Policy,
    item: Item,
    pred: Prediction | None,
    media: Sequence[Medium] | None = None,
) -> list[dict[str, Any]]:
    """Every evidence box of the item that can go to an annotator, whatever stored it:
    [{"position", "category", "box", "image_size", "source", "why"}], boxes clamped, categories
    exported ones only (restricted never). See the module docstring. `media`: the item's media
    when the caller has read them already (push reads a batch's in one query)."""
    from training.labelstudio.project import exported_categories

    allowed = set(exported_categories(policy))
    top = _top_flagged(policy, pred, allowed)
    signals = (pred.signals if pred is not None else None) or {}
    raw = signals.get(EVIDENCE_KEY)
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    if isinstance(raw, list):
        entries: Iterable[Any] = raw
    elif pred is not None and top is not None:
        if media is None:
            media = media_of(session, item.id)
        entries = [
            {
                "position": m.position,
                "category": None,
                "box": line["box"],
                "image_size": list(m.image_size) if m.image_size else None,
                "source": "ocr",
                "why": "ocr-line",
            }
            for m in media
            for line in m.ocr_lines
        ]
    else:
        entries = []
    for e in entries:
        if not isinstance(e, dict) or e.get("source") not in SOURCES:
            continue
        size = _size(e.get("image_size"))
        position = e.get("position", COVER)
        if size is None or not isinstance(position, int) or isinstance(position, bool):
            continue
        category = e.get("category")
        category = top if category is None else category
        if category not in allowed:
            continue
        box = clamp_box(e.get("box"), size)
        if box is None or (position, category, *box) in seen:
            continue
        seen.add((position, category, *box))
        out.append(
            {
                "position": position,
                "category": category,
                "box": box,
                "image_size": list(size),
                "source": e["source"],
                "why": e.get("why"),
            }
        )
    return out


def to_ls_results(
    boxes: Sequence[dict[str, Any]],
    *,
    from_name: str,
    to_name: str,
    media_count: int | None = None,
) -> list[dict[str, Any]]:
    """Label Studio prediction results (RectangleLabels). `media_count`: the task shows that
    many media as a list (`valueList`), and a box on medium k goes out with `item_index` k;
    None: the task shows the cover only, and only the cover's boxes go out."""
    if media_count is None:
        chosen = [b for b in boxes if b["position"] == COVER]
    else:
        chosen = [b for b in boxes if 0 <= b["position"] < media_count]
    out = []
    for k, b in enumerate(chosen):
        w, h = b["image_size"]
        x0, y0, x1, y1 = b["box"]
        result: dict[str, Any] = {
            "id": f"wr{k}",
            "from_name": from_name,
            "to_name": to_name,
            "type": "rectanglelabels",
            "original_width": w,
            "original_height": h,
            "image_rotation": 0,
            "value": {
                "x": round(100.0 * x0 / w, 4),
                "y": round(100.0 * y0 / h, 4),
                "width": round(100.0 * (x1 - x0) / w, 4),
                "height": round(100.0 * (y1 - y0) / h, 4),
                "rotation": 0,
                "rectanglelabels": [b["category"]],
            },
            "meta": {"text": [f"{b['source']}: {b.get('why') or 'evidence'}"]},
        }
        if media_count is not None:
            result["item_index"] = b["position"]
        out.append(result)
    return out


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def from_ls_result(
    item: dict[str, Any],
    fallback_size: tuple[int, int] | None,
    allowed: set[str],
    *,
    sizes: Sequence[tuple[int, int] | None] | None = None,
) -> list[dict[str, Any]] | None:
    """One RectangleLabels result as ledger regions (one per valid label, in pixels), or None
    when it is malformed (see the module docstring). `sizes`: each medium's size by position
    (media_sizes), which also says how many media the item has; without it only the cover
    (`item_index` 0 or none) is accepted, with `fallback_size` as its size."""
    value = item.get("value")
    if not isinstance(value, dict):
        return None
    position = item.get("item_index", COVER)
    if position is None:
        position = COVER
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        return None
    if sizes is not None:
        if position >= len(sizes):
            return None
        fallback_size = sizes[position]
    elif position != COVER:
        return None
    size = _size([item.get("original_width"), item.get("original_height")]) or fallback_size
    nums = [_finite(value.get(k)) for k in ("x", "y", "width", "height")]
    if size is None or any(v is None for v in nums):
        return None
    x, y, width, height = (float(v) for v in nums)  # type: ignore[arg-type]
    if width <= 0 or height <= 0:
        return None
    rotation = _finite(value.get("rotation", 0)) or 0.0
    w, h = size
    # Label Studio rotates a rectangle about its top-left corner (degrees, clockwise on
    # screen): keep the rotated rectangle's bounding box.
    px, py, pw, ph = x * w / 100.0, y * h / 100.0, width * w / 100.0, height * h / 100.0
    if rotation:
        a = math.radians(rotation)
        cos, sin = math.cos(a), math.sin(a)
        corners = [(px + dx * cos - dy * sin, py + dx * sin + dy * cos) for dx, dy in
                   ((0, 0), (pw, 0), (0, ph), (pw, ph))]  # fmt: skip
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        raw = [min(xs), min(ys), max(xs), max(ys)]
    else:
        raw = [px, py, px + pw, py + ph]
    box = clamp_box(raw, size)
    labels = value.get("rectanglelabels")
    if box is None or not isinstance(labels, list) or not labels:
        return None
    cats = [c for c in labels if isinstance(c, str) and c in allowed]
    if len(cats) != len(labels):
        return None
    return [
        {
            "position": position,
            "category": c,
            "box": box,
            "image_size": [w, h],
            "source": LS_SOURCE,
            "ls_id": str(item.get("id")) if item.get("id") is not None else None,
        }
        for c in dict.fromkeys(cats)
    ]
