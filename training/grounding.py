"""Grounding rows: teach post-training where on the image a decided category is.

A decision that carries boxes (Label Studio annotators' corrected rectangles, stored in
`Decision.meta["regions"]` by training.labelstudio.sync: pixels of the image at `position`
of the item's media, 0 the cover) gives one SFT row per decided category and image with boxes:
the prompt asks where the content violating that category is, the completion answers in the
base model's own grounding format:

    internvl     <ref>drugs</ref><box>[[x1, y1, x2, y2], ...]</box>           0-1000 of w/h
    qwen2_vl     <|object_ref_start|>drugs<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>
                 (one box tag per box)                                       0-1000 of w/h
    qwen2_5_vl   ```json [{"bbox_2d": [x1, y1, x2, y2], "label": "drugs"}] ```  pixels of the
                 image as the processor resizes it (smart_resize: the base's
                 preprocessor_config.json when the format was picked from a base folder, else
                 the model card's 28 px grid and 3136..12845056 pixels)

InternVL (the demo and the shipped recipe) is the default; `format_for_base` picks by a model
folder's `config.json` `model_type` (internvl, qwen2_vl, qwen2_5_vl) or a hub id's name.
Posts and videos: the row's prompt is the scorer's multi-image prompt for the item (every
image or frame, one placeholder each, their labelled OCR lines: `training.dataset.item_messages`,
so the row's images are the item's, as for its SFT rows), and the question names the image
the boxes are on by the label the prompt gives it ("Where in Image 2 is ...", "Where in
Frame 3 (1.5 s) is ..."); the boxes are in that image's coordinates (0-1000 of its w/h, or
pixels of it as Qwen2.5-VL resizes it). That is how both families are asked to ground in
one image of several: InternVL and Qwen2-VL/2.5-VL take the images in one conversation and
answer a referring question about the one it names, in coordinates of that image alone
(neither family's box answer names an image, so the question must). The rows teach that
native skill; serving asks for boxes in Warden's JSON verdict, with "image": k
(model.grounding). A single image keeps its question ("Where in the image is ..."), byte for
byte as before.

Which boxes: per item, the newest decision that nothing superseded, is not a retraction and
holds boxes; boxes on any of its images (a position past the item's media, or past the
images a build keeps, gives no row), of categories the curated labels hold, clamped to the
image. Rows go to `data/grounding-{split}.parquet` (config "grounding"), never into the SFT
files, whose yes/no answers the answer-token loss and the negative subsampling read. Each row
also keeps its boxes as stored (`boxes`: JSON, pixels of the image with its size, and
`position` for an image other than the cover), so another box format can be written from it
later.

    rows = grounding_rows(item, policy, regions, "internvl")
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from model import prompts
from storage.errors import WardenError
from storage.models import Decision as DecisionRow
from storage.policy import Policy
from training.curation import CuratedItem
from training.labelstudio.regions import clamp_box

GroundingFormat = Literal["internvl", "qwen2_vl", "qwen2_5_vl"]
FORMATS: tuple[GroundingFormat, ...] = ("internvl", "qwen2_vl", "qwen2_5_vl")
DEFAULT_FORMAT: GroundingFormat = "internvl"
# model_type in a checkpoint's config.json -> its grounding format.
MODEL_TYPES: dict[str, GroundingFormat] = {
    "internvl": "internvl",
    "internvl_chat": "internvl",
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_5_vl",
}
# Qwen2.5-VL's processor (preprocessor_config.json of the Qwen2.5-VL model cards).
QWEN25_RESIZE = {"factor": 28, "min_pixels": 3136, "max_pixels": 12845056}
COLUMNS = ("key", "category", "prompt", "completion", "origin", "boxes")


def check_format(fmt: str) -> GroundingFormat:
    if fmt not in FORMATS:
        raise WardenError(f"grounding format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


def format_for_base(base: str) -> GroundingFormat:
    """The grounding format of a model folder (its config.json's model_type) or hub id."""
    from model.loading import resolve_model_path

    resolved = resolve_model_path(base)
    config = Path(resolved) / "config.json"
    if config.is_file():
        model_type = str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
        if model_type in MODEL_TYPES:
            return MODEL_TYPES[model_type]
        raise WardenError(
            f"{base}: model_type {model_type!r} has no known grounding format; pass one of "
            f"{', '.join(FORMATS)}"
        )
    name = resolved.lower().replace("_", ".").replace("-", "")
    if "internvl" in name:
        return "internvl"
    if "qwen2.5vl" in name:
        return "qwen2_5_vl"
    if "qwen2vl" in name:
        return "qwen2_vl"
    raise WardenError(f"{base}: no known grounding format; pass one of {', '.join(FORMATS)}")


def _thousandths(box: Sequence[float], size: Sequence[int]) -> list[int]:
    w, h = size
    return [min(1000, max(0, round(1000 * v / d))) for v, d in zip(box, (w, h, w, h), strict=True)]


def resize_for_base(base: str) -> dict[str, int] | None:
    """The resize a Qwen2.5-VL base folder's processor does ({"factor", "min_pixels",
    "max_pixels"} from its preprocessor_config.json), None without one (hub ids: the model
    card's, QWEN25_RESIZE)."""
    from model.loading import resolve_model_path

    file = Path(resolve_model_path(base)) / "preprocessor_config.json"
    if not file.is_file():
        return None
    cfg = json.loads(file.read_text(encoding="utf-8"))
    size = cfg.get("size") if isinstance(cfg.get("size"), dict) else {}

    def pick(key: str, alt: str) -> int:
        v = cfg.get(key) or size.get(alt)
        return int(v) if v else QWEN25_RESIZE[key]

    return {
        "factor": int(cfg.get("patch_size") or 14) * int(cfg.get("merge_size") or 2),
        "min_pixels": pick("min_pixels", "shortest_edge"),
        "max_pixels": pick("max_pixels", "longest_edge"),
    }


def qwen25_input_size(size: Sequence[int], resize: dict[str, int] | None = None) -> tuple[int, int]:
    """(w, h) of the image as Qwen2.5-VL's processor feeds it (smart_resize)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    r = resize or QWEN25_RESIZE
    h, w = smart_resize(
        int(size[1]),
        int(size[0]),
        factor=r["factor"],
        min_pixels=r["min_pixels"],
        max_pixels=r["max_pixels"],
    )
    return (w, h)


def answer_text(
    fmt: GroundingFormat,
    category: str,
    regions: Sequence[dict[str, Any]],
    resize: dict[str, int] | None = None,
) -> str:
    """The completion: every box of `category` in the model's own grounding format (`resize`:
    a Qwen2.5-VL processor's, see `resize_for_base`)."""
    if fmt == "internvl":
        boxes = ", ".join(
            "[" + ", ".join(str(v) for v in _thousandths(r["box"], r["image_size"])) + "]"
            for r in regions
        )
        return f"<ref>{category}</ref><box>[{boxes}]</box>"
    if fmt == "qwen2_vl":
        tags = "".join(
            "<|box_start|>({},{}),({},{})<|box_end|>".format(
                *_thousandths(r["box"], r["image_size"])
            )
            for r in regions
        )
        return f"<|object_ref_start|>{category}<|object_ref_end|>{tags}"
    out = []
    for r in regions:
        w, h = r["image_size"]
        iw, ih = qwen25_input_size((w, h), resize)
        x0, y0, x1, y1 = r["box"]
        out.append(
            {
                "bbox_2d": [round(x0 * iw / w), round(y0 * ih / h), round(x1 * iw / w),
                            round(y1 * ih / h)],
                "label": category,
            }
        )  # fmt: skip
    return "```json\n" + json.dumps(out, ensure_ascii=False) + "\n```"


def grounding_question(
    policy: Policy,
    category: str,
    image: str | None = None,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
) -> str:
    """The question for one category; `image` names one image of several by its prompt label
    ("Image 2", "Frame 3 (1.5 s)"), None for a single image. In the "policy" layout the
    system turn lists the policy, so the question names the category by its id only, as the
    scorer's questions do there (model.prompts.category_question)."""
    cat = policy.category(category)
    where = image if image is not None else "the image"
    if layout == "policy":
        return (
            f"Where in {where} is the content that violates {cat.id}? Give the bounding box "
            "of each region."
        )
    return (
        f"Policy category {cat.id} ({cat.title}): {cat.description} "
        f"Where in {where} is the content that violates it? Give the bounding box of "
        "each region."
    )


def _valid(region: Any) -> dict[str, Any] | None:
    """The region as a row stores it ("position" only for an image other than the cover),
    None when malformed."""
    if not isinstance(region, dict):
        return None
    position = region.get("position", 0)
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        return None
    size = region.get("image_size")
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)
    ):
        return None
    if not isinstance(region.get("category"), str):
        return None
    box = clamp_box(region.get("box"), (size[0], size[1]))
    if box is None:
        return None
    out = {"category": region["category"], "box": box, "image_size": [size[0], size[1]]}
    return out | {"position": position} if position else out


def decision_regions(session: Session, item_ids: Iterable[int]) -> dict[int, list[dict]]:
    """Per item: the boxes (on any of its images) of its newest live decision that has boxes
    (see the module docstring); items without any are left out."""
    ids = sorted({int(i) for i in item_ids})
    out: dict[int, list[dict[str, Any]]] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        rows = session.execute(
            select(
                DecisionRow.id,
                DecisionRow.item_id,
                DecisionRow.action,
                DecisionRow.supersedes_id,
                DecisionRow.meta,
            )
            .where(DecisionRow.item_id.in_(part))
            .order_by(DecisionRow.item_id, DecisionRow.id)
        ).all()
        superseded = {r.supersedes_id for r in rows if r.supersedes_id is not None}
        for r in reversed(rows):
            if r.item_id in out or r.id in superseded or r.action == "retract":
                continue
            regions = (r.meta or {}).get("regions")
            if not isinstance(regions, list):
                continue
            valid = [v for v in map(_valid, regions) if v is not None]
            if valid:
                out[r.item_id] = valid
    return out


def grounding_rows(
    item: CuratedItem,
    policy: Policy,
    regions: Sequence[dict[str, Any]],
    fmt: GroundingFormat,
    *,
    read: Callable[[str], str] | None = None,
    resize: dict[str, int] | None = None,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
) -> list[dict[str, Any]]:
    """One row per decided category and image that have boxes: the item's SFT prompt (all its
    media, OCR hints read as the scorer reads them) with the grounding question about that
    image, the boxes as the completion. Boxes on a position the item's media do not reach
    give no row. Prompts are in `layout` (the dataset's)."""
    from training.dataset import item_messages

    n_media = max(1, len(item.media))
    labels = [m.label for m in item.media] if item.media else ["Image 1"]
    rows = []
    for category in item.labels:
        on = [r for r in regions if r["category"] == category]
        for position in sorted({r.get("position", 0) for r in on}):
            if position >= n_media:
                continue
            boxes = [r for r in on if r.get("position", 0) == position]
            question = grounding_question(
                policy, category, labels[position] if n_media > 1 else None, layout
            )
            rows.append(
                {
                    "key": item.key,
                    "category": category,
                    "prompt": item_messages(item, policy, question, read=read, layout=layout),
                    "completion": prompts.answer_messages(
                        answer_text(fmt, category, boxes, resize)
                    ),
                    "origin": item.origin,
                    "boxes": boxes,
                }
            )
    return rows


def _digest_of(row: dict[str, Any]) -> list[Any]:
    """What of a row goes into the data hash: its category and completion, and the image
    position when it is not the cover (cover-only builds keep the hash they had)."""
    position = row["boxes"][0].get("position", 0)
    return [row["category"], row["completion"]] + ([position] if position else [])


def write_grounding(
    session: Session,
    data_dir: Path,
    policy: Policy,
    splits: dict[str, Sequence[CuratedItem]],
    fmt: str,
    *,
    read: Callable[[str], str] | None = None,
    resize: dict[str, int] | None = None,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
) -> tuple[dict[str, Any], str | None]:
    """Write `grounding-{split}.parquet` for each split (an empty file when no decision has
    boxes); returns the card's counts ({split: rows, "items": items with boxes, "format"})
    and a digest of the boxes for the data hash (None when there are none, so builds without
    boxes keep their hash)."""
    from training.dataset import _RowsWriter

    fmt = check_format(fmt)
    ledger_ids = [it.item_id for rows in splits.values() for it in rows if it.item_id]
    regions = decision_regions(session, ledger_ids)
    counts: dict[str, Any] = {"format": fmt}
    if fmt == "qwen2_5_vl":
        counts["resize"] = dict(resize or QWEN25_RESIZE)
    used: dict[str, list[Any]] = {}
    for split, items in splits.items():
        writer = _RowsWriter(data_dir / f"grounding-{split}.parquet", COLUMNS)
        for it in items:
            boxes = regions.get(it.item_id or -1)
            if it.origin != "ledger" or not boxes:
                continue
            rows = grounding_rows(it, policy, boxes, fmt, read=read, resize=resize, layout=layout)
            if rows:
                writer.add(rows)
                used.setdefault(it.key, [split, [_digest_of(r) for r in rows]])
        counts[split] = writer.close()
    counts["items"] = len(used)
    if not used:
        return counts, None
    return counts, json.dumps([fmt, resize, sorted(used.items())], sort_keys=True)
