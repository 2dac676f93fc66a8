"""Grounding: boxes of the violating regions, asked of models that can draw them, in the strict
JSON verdict (model.rationale) and turned into evidence regions (model.regions' records).

Each model family answers in its own coordinate convention, and the question says which:
- Qwen2.5-VL (`qwen2_5_vl`): absolute pixels of the image *as the model saw it*, i.e. after
  its processor resized it (`smart_resize`: sides rounded to multiples of patch x merge, area
  between min and max pixels); mapped back by that resize.
- InternVL (`internvl`, InternVL3/3.5-HF) and Qwen2-VL (`qwen2_vl`): 0-1000 normalised to the
  image's width and height.
Other families are not asked. The reply's "boxes" (optional) is a list of
{"category": <policy id>, "box": [x1, y1, x2, y2], "image": <1..N, posts and videos>}; a
malformed entry (unknown category, not four finite numbers, no area once clamped to the
image, an image number out of range) is dropped and counted in `signals["boxes_dropped"]`.
A "boxes" that is not a list makes the whole reply unparsable (model.rationale).

    convention = convention_for(model)                   # "pixels" | "norm1000" | None
    question = rationale_question(policy) + grounding_question(convention, n_images)
    regions, dropped = parse_boxes(reply.boxes, policy, views, convention, processor)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL.Image import Image

    from storage.policy import Policy

Convention = Literal["pixels", "norm1000"]
_FAMILIES: dict[str, Convention] = {
    "qwen2_5_vl": "pixels",
    "internvl": "norm1000",
    "qwen2_vl": "norm1000",
}
MAX_BOXES = 32  # per reply; the rest count as dropped


def convention_for(model: Any) -> Convention | None:
    """The box convention of a loaded model's family (a PEFT wrapper is looked through); None
    for a family that does not ground."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    return _FAMILIES.get(str(model_type)) if model_type else None


def convention_for_name(served_name: str) -> Convention | None:
    """The box convention of a model served under `served_name` (the OpenAI-compatible
    backend sees no config): a Hugging Face id or path naming the family, e.g.
    "Qwen/Qwen2.5-VL-7B-Instruct" or "OpenGVLab/InternVL3_5-2B-HF"; None for any other name."""
    name = served_name.lower().replace("_", "-").replace(".", "-")
    if "qwen2-5-vl" in name:
        return "pixels"
    if "internvl" in name or "qwen2-vl" in name:
        return "norm1000"
    return None


def grounding_question(convention: Convention | None, n_images: int = 1) -> str:
    """What the verdict question adds for a model that grounds ("" for one that does not)."""
    if convention is None:
        return ""
    unit = (
        "in pixels of the image as you see it"
        if convention == "pixels"
        else "with coordinates from 0 to 1000 relative to the image's width and height"
    )
    which = f' and "image": <1 to {n_images}> saying which image' if n_images > 1 else ""
    return (
        ' Also add "boxes": [{"category": <id>, "box": [x1, y1, x2, y2]}], one box around '
        f"each region of the image that violates a category, {unit}{which}; "
        "[] when none."
    )


def model_input_size(processor: Any, size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of an image of `size` as a Qwen2.5-VL processor resizes it for the model; with
    no processor (a served model), as the processor's defaults do, which vLLM uses unless it
    was started with other min/max pixels."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    if processor is None:
        from transformers import Qwen2VLImageProcessor

        ip: Any = Qwen2VLImageProcessor()
    else:
        ip = processor.image_processor
    sizes = getattr(ip, "size", None) or {}

    def pick(attr: str, key: str, default: int) -> int:
        v = getattr(ip, attr, None)
        if v is None:
            v = sizes.get(key) if hasattr(sizes, "get") else getattr(sizes, key, None)
        return int(v) if v else default

    factor = int(getattr(ip, "patch_size", 14)) * int(getattr(ip, "merge_size", 2))
    h, w = smart_resize(
        size[1],
        size[0],
        factor=factor,
        min_pixels=pick("min_pixels", "shortest_edge", 56 * 56),
        max_pixels=pick("max_pixels", "longest_edge", 28 * 28 * 1280),
    )
    return int(w), int(h)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def parse_boxes(
    boxes: Sequence[Any] | None,
    policy: Policy,
    views: Sequence[Image] | Sequence[tuple[int, int]],
    convention: Convention,
    processor: Any = None,
) -> tuple[list[dict[str, Any]], int]:
    """(evidence regions in the views' pixels, number of entries dropped as malformed).
    `views`: the item's images in prompt order (or their (w, h) sizes)."""
    if not boxes:
        return [], 0
    sizes = [v if isinstance(v, tuple) else (int(v.width), int(v.height)) for v in views]
    known = set(policy.ids)
    regions: list[dict[str, Any]] = []
    dropped = 0
    for n, entry in enumerate(boxes):
        region = _one(entry, known, sizes, convention, processor) if n < MAX_BOXES else None
        if region is None:
            dropped += 1
        else:
            regions.append(region)
    return regions, dropped


def _one(
    entry: Any,
    known: set[str],
    sizes: Sequence[tuple[int, int]],
    convention: Convention,
    processor: Any,
) -> dict[str, Any] | None:
    if not isinstance(entry, dict) or set(entry) - {"category", "box", "image"}:
        return None
    category, box, image = entry.get("category"), entry.get("box"), entry.get("image", 1)
    if not isinstance(category, str) or category not in known:
        return None
    if isinstance(image, bool) or not isinstance(image, int) or not 1 <= image <= len(sizes):
        return None
    if not isinstance(box, list) or len(box) != 4:
        return None
    nums = [_number(v) for v in box]
    if any(v is None for v in nums):
        return None
    w, h = sizes[image - 1]
    if convention == "pixels":
        in_w, in_h = model_input_size(processor, (w, h))
        sx, sy = w / in_w, h / in_h
    else:
        sx, sy = w / 1000.0, h / 1000.0
    x1, y1, x2, y2 = (float(v) for v in nums)  # type: ignore[arg-type]
    if x2 <= x1 or y2 <= y1:
        return None
    x1, x2 = min(max(x1 * sx, 0.0), w), min(max(x2 * sx, 0.0), w)
    y1, y2 = min(max(y1 * sy, 0.0), h), min(max(y2 * sy, 0.0), h)
    if x2 - x1 < 1 or y2 - y1 < 1:  # nothing of it on the image
        return None
    return {
        "position": image - 1,
        "category": category,
        "box": [round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1)],
        "image_size": [int(w), int(h)],
        "source": "model",
        "why": "grounding",
    }


def grounded_signals(
    raw: str,
    policy: Policy,
    views: Sequence[Image],
    convention: Convention,
    processor: Any = None,
) -> dict[str, Any]:
    """What a grounded verdict adds to the prediction's signals: {"evidence_regions": [...],
    "boxes_dropped": n}; {} when the reply does not parse or carries no "boxes"."""
    from model.rationale import parse_rationale

    reply = parse_rationale(raw, policy)
    if reply is None or reply.boxes is None:
        return {}
    regions, dropped = parse_boxes(reply.boxes, policy, views, convention, processor)
    return {"evidence_regions": regions, "boxes_dropped": dropped}


# What the verdict's token budget allows for: the rationale ("one short sentence", counted at
# this many characters) and one box per category per image (at most MAX_BOXES), each with the
# widest coordinates and image number the question allows.
RATIONALE_BUDGET_CHARS = 240
# A verdict without boxes: the categories and one short sentence.
DEFAULT_MAX_NEW_TOKENS = 160


def worst_case_verdict(policy: Policy, n_images: int = 1) -> str:
    """The longest verdict a grounding model is asked for, as JSON text: every category, a
    rationale of RATIONALE_BUDGET_CHARS characters and one box per category per image (at
    most MAX_BOXES) with four-digit coordinates."""
    import json

    ids = list(policy.ids)
    longest = max(ids, key=len)
    n_boxes = min(MAX_BOXES, len(ids) * max(1, n_images))
    box: dict[str, Any] = {"category": longest, "box": [1000, 1000, 1000, 1000]}
    if n_images > 1:
        box["image"] = n_images
    reply = {"categories": ids, "rationale": "x" * RATIONALE_BUDGET_CHARS, "boxes": [box] * n_boxes}
    return json.dumps(reply, ensure_ascii=False)


def verdict_max_new_tokens(
    configured: int | None,
    policy: Policy,
    convention: Convention | None,
    n_images: int = 1,
    tokenizer: Any = None,
) -> int:
    """Tokens a verdict may generate: `configured` (WARDEN_MODEL__MAX_NEW_TOKENS) when set;
    else DEFAULT_MAX_NEW_TOKENS, raised for a model asked for boxes to what
    `worst_case_verdict` takes with `tokenizer` (without one, two tokens per three characters:
    Qwen's BPE spends a token per digit of a coordinate), plus a few for a code fence. A
    greedy reply stops at its end token, so the budget costs nothing when the model answers
    shorter."""
    if configured is not None:
        return configured
    if convention is None:
        return DEFAULT_MAX_NEW_TOKENS
    text = worst_case_verdict(policy, n_images)
    if tokenizer is not None:
        needed = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    else:
        needed = (2 * len(text) + 2) // 3
    return max(DEFAULT_MAX_NEW_TOKENS, needed + 16)
