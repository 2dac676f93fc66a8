"""The media of an item: the images of a post or the sampled frames of a video, in order.

One item is one decision over 1..N media; a single image is the N = 1 case. Rows live in
`item_media` (position 0 is the cover, the same image as `Item.view_sha256`). Items written
before that table existed, or by code that inserts `Item` rows directly, have no rows: they
read as one medium made from the item's own blob and view, so every reader has one code path.

    media = media_of(session, item_id)                    # [Medium, ...] by position
    by_item = media_for(session, [1, 2, 3])               # {item_id: [Medium, ...]}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Item, ItemMedium

MediumKind = Literal["image", "frame"]


@dataclass(frozen=True)
class Medium:
    """One image or frame of an item, as the model, UI and exports see it."""

    item_id: int
    position: int
    blob_sha256: str
    view_sha256: str | None
    kind: MediumKind = "image"
    timestamp_s: float | None = None
    phash: str | None = None
    ocr_text: str | None = None
    nsfw_score: float | None = None
    # OCR lines with their boxes: [{"text", "box": [x0, y0, x1, y1], "score"}] in the pixels
    # of the view (`image_size`, (w, h)); [] before the worker read it, or for rows older than
    # the boxes (`ocr_lines` skips anything malformed).
    ocr_boxes: list[Any] = field(default_factory=list)
    image_size: tuple[int, int] | None = None

    @property
    def ocr_lines(self) -> list[dict[str, Any]]:
        """The well-formed entries of `ocr_boxes` (text, four finite numbers, score)."""
        return [b for b in self.ocr_boxes if valid_ocr_box(b)]

    @property
    def image_sha256(self) -> str:
        """The blob to decode for pixels: the normalised view when there is one."""
        return self.view_sha256 or self.blob_sha256

    @property
    def label(self) -> str:
        """'Image 2' or 'Frame 3 (1.5 s)': how prompts and the card name this medium."""
        if self.kind == "frame":
            at = f" ({self.timestamp_s:.1f} s)" if self.timestamp_s is not None else ""
            return f"Frame {self.position + 1}{at}"
        return f"Image {self.position + 1}"


@dataclass(frozen=True)
class NewMedium:
    """A medium about to be stored with a new item (ingest)."""

    blob_sha256: str
    view_sha256: str | None
    kind: MediumKind = "image"
    timestamp_s: float | None = None
    phash: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def valid_ocr_box(entry: Any) -> bool:
    """An `ocr_boxes` entry the card can draw: {"text": str, "box": [x0, y0, x1, y1]} with
    x0 <= x1 and y0 <= y1, finite numbers."""
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
        return False
    box = entry.get("box")
    if not isinstance(box, list | tuple) or len(box) != 4:
        return False
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
        return False
    if not all(math.isfinite(v) for v in box):
        return False
    return box[0] <= box[2] and box[1] <= box[3]


def _size(meta: Any) -> tuple[int, int] | None:
    size = meta.get("image_size") if isinstance(meta, dict) else None
    if isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(v, int) for v in size):
        return (int(size[0]), int(size[1]))
    return None


def _from_row(row: ItemMedium) -> Medium:
    return Medium(
        item_id=row.item_id,
        position=row.position,
        blob_sha256=row.blob_sha256,
        view_sha256=row.view_sha256,
        kind="frame" if row.kind == "frame" else "image",
        timestamp_s=row.timestamp_s,
        phash=row.phash,
        ocr_text=row.ocr_text,
        nsfw_score=row.nsfw_score,
        ocr_boxes=list(row.ocr_boxes or []),
        image_size=_size(row.meta),
    )


def add_media(s: Session, item_id: int, media: Sequence[NewMedium]) -> None:
    """Store `media` as the item's media, in order (does not commit)."""
    for position, m in enumerate(media):
        s.add(
            ItemMedium(
                item_id=item_id,
                position=position,
                blob_sha256=m.blob_sha256,
                view_sha256=m.view_sha256,
                kind=m.kind,
                timestamp_s=m.timestamp_s,
                phash=m.phash,
                meta=dict(m.meta),
            )
        )


def media_for(s: Session, item_ids: Sequence[int]) -> dict[int, list[Medium]]:
    """Every item's media by position; an item without rows gets its own image as N = 1."""
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        return {}
    found: dict[int, list[Medium]] = {i: [] for i in ids}
    rows = s.scalars(
        select(ItemMedium)
        .where(ItemMedium.item_id.in_(ids))
        .order_by(ItemMedium.item_id, ItemMedium.position)
    )
    for row in rows:
        found[row.item_id].append(_from_row(row))
    missing = [i for i, media in found.items() if not media]
    if missing:
        for item_id, blob, view, phash in s.execute(
            select(Item.id, Item.blob_sha256, Item.view_sha256, Item.phash).where(
                Item.id.in_(missing)
            )
        ):
            found[item_id] = [Medium(item_id, 0, blob, view, phash=phash)]
    return {i: media for i, media in found.items() if media}


def media_of(s: Session, item_id: int) -> list[Medium]:
    """The item's media by position ([] when the item does not exist)."""
    return media_for(s, [item_id]).get(item_id, [])


def record_medium_signals(
    s: Session,
    item_id: int,
    position: int,
    *,
    ocr_text: str | None,
    nsfw_score: float | None,
    ocr_boxes: list[Any] | None = None,
    image_size: tuple[int, int] | None = None,
) -> None:
    """Store one medium's OCR text/boxes and NSFW score (scoring worker; does not commit);
    `image_size` (w, h) of the view the boxes are in goes into the row's meta.
    An item without media rows (old or directly inserted) has nothing to update."""
    row = s.scalar(
        select(ItemMedium).where(ItemMedium.item_id == item_id, ItemMedium.position == position)
    )
    if row is None:
        return
    row.ocr_text = ocr_text
    row.nsfw_score = nsfw_score
    if ocr_boxes is not None:
        row.ocr_boxes = ocr_boxes
    if image_size is not None:
        # A new dict: the JSON column notices assignment, not mutation.
        row.meta = {**(row.meta or {}), "image_size": [int(image_size[0]), int(image_size[1])]}


def medium_image_sha(s: Session, item_id: int, position: int = 0) -> str | None:
    """The blob to show for medium `position` of an item (its view when there is one); the
    cover (0) is the item's own view, as before media existed. None when there is none."""
    if position == 0:
        row = s.execute(
            select(Item.view_sha256, Item.blob_sha256).where(Item.id == item_id)
        ).first()
        return (row[0] or row[1]) if row is not None else None
    found = s.execute(
        select(ItemMedium.view_sha256, ItemMedium.blob_sha256).where(
            ItemMedium.item_id == item_id, ItemMedium.position == position
        )
    ).first()
    return (found[0] or found[1]) if found is not None else None
