"""Grounding rows in post-training: the SFT stage learns where a decided category is.

`warden dataset build` writes `data/grounding-{train,validation}.parquet` (training.grounding):
the scorer's prompt with a "where is it?" question, answered with the boxes in the base model's
own format (InternVL `<ref>cat</ref><box>[[x1, y1, x2, y2]]</box>` 0-1000, Qwen2-VL box tags
0-1000, Qwen2.5-VL `bbox_2d` JSON in resized pixels). Here they become SFT rows beside the
Yes/No rows: the prompt rendered by the base's chat template as the scorer renders it, the
completion the whole answer plus the template's end-of-turn token (so the model learns to
stop), and an `answer_weight` the answer-token loss multiplies each of its tokens by
(`PostTrainConfig.grounding_weight`; training.answer_loss). The prompt is masked as for the
Yes/No rows.

They are used only when the base can see images (the demo checkpoint and anything refined from
it cannot: model.describe.sees_images) and answers in the dataset's box format; otherwise the
run records why it did not (`metrics["grounding"]`: status "skipped" and a plain reason).

The validation rows are measured on the trained model: the answer-token loss (before and after
training, the same masking as training) and greedy answers parsed back into boxes (the native
format read into entries that model.grounding.parse_boxes clamps and maps to pixels, as it does
for the verdict's boxes), scored by IoU against the stored boxes: for each stored box, the best
IoU of any parsed box of its row (0 when none parses), averaged over all stored boxes.

    rows, info = training_rows(base, data, config.grounding_weight, has_sft=True)
    metrics["grounding"] = info | {"validation": evaluate(model, processor, val, policy, fmt)}
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storage.errors import WardenError

log = logging.getLogger(__name__)

# A box format's coordinate convention in model.grounding (InternVL and Qwen2-VL: 0-1000).
CONVENTIONS = {"internvl": "norm1000", "qwen2_vl": "norm1000", "qwen2_5_vl": "pixels"}
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_LIST_BOX = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")
_TAG_BOX = re.compile(r"\(" + _NUM + "," + _NUM + r"\)\s*,\s*\(" + _NUM + "," + _NUM + r"\)")


def _split_rows(data: Path, split: str) -> list[dict[str, Any]]:
    from training.dataset import load_trl_split

    if not (Path(data) / "data" / f"grounding-{split}.parquet").is_file():
        return []
    return load_trl_split(data, "grounding", split)


def training_rows(
    base: str, data: Path, weight: float, *, has_sft: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the dataset's grounding train rows to add to the SFT rows, the record for the run's
    metrics). No rows, with the reason recorded, when the run has no SFT stage, the weight is
    0, the dataset holds none, the base cannot see images or answers in another box format."""
    from model.describe import sees_images
    from model.loading import resolve_model_path
    from training.dataset import read_card
    from training.grounding import format_for_base

    card = (read_card(data).get("counts") or {}).get("grounding") or {}
    fmt = card.get("format")
    info: dict[str, Any] = {"status": "skipped", "format": fmt, "train_rows": 0}

    def skip(reason: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        log.info("grounding rows not trained: %s", reason)
        return [], info | {"reason": reason}

    if not has_sft:
        return skip("the run has no SFT stage (grounding rows train in SFT only)")
    if weight <= 0:
        return skip("grounding_weight is 0")
    rows = _split_rows(data, "train")
    if not rows:
        return skip("the dataset has no grounding rows (no decision with boxes)")
    if not sees_images(resolve_model_path(base)):
        return skip(
            f"the base model {base} cannot see images (it reads the OCR text only: "
            "demo checkpoint), so it cannot learn where a region is"
        )
    try:
        native = format_for_base(base)
    except WardenError as e:
        return skip(str(e))
    if native != fmt:
        return skip(f"the dataset's boxes are in the {fmt} format; {base} answers in {native}")
    return rows, info | {"status": "trained", "train_rows": len(rows), "weight": weight}


def turn_end(processor: Any) -> str:
    """What the chat template writes after an assistant answer (e.g. "<|im_end|>"), so that a
    trained answer ends where the model should stop; the tokenizer's EOS when the template
    does not render an answer after the generation prompt."""
    tok = getattr(processor, "tokenizer", processor)
    marker = "\x00ANSWER\x00"
    user = [{"role": "user", "content": [{"type": "text", "text": "q"}]}]
    answer = [{"role": "assistant", "content": [{"type": "text", "text": marker}]}]
    prompt = processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    full = processor.apply_chat_template(user + answer, tokenize=False)
    if full.startswith(prompt) and marker in full:
        end = full.split(marker, 1)[1].strip()
        if end:
            return end
    return tok.eos_token or ""


def text_rows(
    rows: Sequence[dict[str, Any]], processor: Any, weight: float
) -> list[dict[str, Any]]:
    """Grounding rows as the SFT trainer takes them: the prompt rendered as the scorer renders
    it (`add_generation_prompt=True`), the answer plus the end-of-turn token, its weight."""
    from training.posttrain import _answer

    end = turn_end(processor)
    return [
        {
            "images": r["images"],
            "prompt": processor.apply_chat_template(
                r["prompt"], add_generation_prompt=True, tokenize=False
            ),
            "completion": _answer(r["completion"]) + end,
            "answer_weight": float(weight),
        }
        for r in rows
    ]


def answer_entries(text: str, fmt: str, category: str) -> list[dict[str, Any]]:
    """The boxes of a native grounding answer as model.grounding verdict entries
    ({"category", "box"}); [] when none can be read."""
    boxes: list[list[float]] = []
    if fmt == "internvl":
        boxes = [[float(v) for v in m.groups()] for m in _LIST_BOX.finditer(text)]
    elif fmt == "qwen2_vl":
        boxes = [[float(v) for v in m.groups()] for m in _TAG_BOX.finditer(text)]
    elif fmt == "qwen2_5_vl":
        body = text.strip().removeprefix("```json").removesuffix("```").strip()
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, RecursionError):
            data = None
        if isinstance(data, list):
            boxes = [d["bbox_2d"] for d in data if isinstance(d, dict) and "bbox_2d" in d]
    return [{"category": category, "box": list(b)} for b in boxes]


def parse_answer(
    text: str, fmt: str, category: str, policy: Any, size: tuple[int, int], processor: Any
) -> list[dict[str, Any]]:
    """Evidence regions (pixels of the image of `size`) read from a native grounding answer,
    through model.grounding.parse_boxes (malformed boxes dropped, the rest clamped)."""
    from model.grounding import parse_boxes

    entries = answer_entries(text, fmt, category)
    regions, _ = parse_boxes(entries, policy, [size], CONVENTIONS[fmt], processor)  # type: ignore[arg-type]
    return regions


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _stored_boxes(row: dict[str, Any]) -> list[dict[str, Any]]:
    boxes = row.get("boxes")
    return json.loads(boxes) if isinstance(boxes, str) else list(boxes or [])


def evaluate(
    model: Any,
    processor: Any,
    rows: Sequence[dict[str, Any]],
    policy: Any,
    fmt: str,
    *,
    generate: bool = True,
) -> dict[str, Any]:
    """On grounding rows (TRL format, with their stored boxes): the answer-token loss (mean
    over the answers' tokens, end-of-turn included, prompt masked as in training) and, with
    `generate`, the greedy answers' parsed boxes against the stored ones (mean IoU, rows whose
    answer gave at least one box)."""
    import torch

    from model.scoring import _processor_inputs

    tok = processor.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    end = turn_end(processor)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    ious: list[float] = []
    parsed = 0
    examples: list[str] = []
    try:
        with torch.inference_mode():
            for r in rows:
                prompt = processor.apply_chat_template(
                    r["prompt"], add_generation_prompt=True, tokenize=False
                )
                answer = r["completion"][0]["content"][0]["text"] + end
                enc = _processor_inputs(
                    processor, [prompt], [r["images"]], model.device, model.dtype
                )
                ans = tok(answer, add_special_tokens=False, return_tensors="pt")["input_ids"]
                ans = ans.to(model.device)
                ids = torch.cat([enc["input_ids"], ans], dim=1)
                mask = torch.cat([enc["attention_mask"], torch.ones_like(ans)], dim=1)
                extra = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
                n = ans.shape[1]
                out = model(input_ids=ids, attention_mask=mask, **extra, logits_to_keep=n + 1)
                logits = out.logits[0, :-1].float()  # positions predicting the answer tokens
                total += float(torch.nn.functional.cross_entropy(logits, ans[0], reduction="sum"))
                count += n
                if not generate:
                    continue
                gen = model.generate(
                    **enc,
                    max_new_tokens=n + 16,
                    do_sample=False,
                    pad_token_id=pad,
                )
                text = tok.decode(gen[0, enc["input_ids"].shape[1] :], skip_special_tokens=False)
                for stop in (end, tok.eos_token):
                    if stop:
                        text = text.split(stop, 1)[0]
                if len(examples) < 3:
                    examples.append(text[:200])
                # A row asks about one image of its item (a post's or video's: the stored
                # boxes' position); the answer's coordinates are that image's.
                stored = _stored_boxes(r)
                position = int(stored[0].get("position", 0)) if stored else 0
                image = r["images"][min(position, len(r["images"]) - 1)]
                regions = parse_answer(
                    text, fmt, r["category"], policy, (image.width, image.height), processor
                )
                parsed += bool(regions)
                for gold in stored:
                    ious.append(max((iou(gold["box"], p["box"]) for p in regions), default=0.0))
    finally:
        model.train(was_training)
    out: dict[str, Any] = {"rows": len(rows), "loss": round(total / max(count, 1), 4)}
    if generate:
        out |= {
            "mean_iou": round(sum(ious) / len(ious), 4) if ious else None,
            "boxes": len(ious),
            "answers_with_boxes": parsed,
            "examples": examples,
        }
    return out


def validation_rows(data: Path) -> list[dict[str, Any]]:
    return _split_rows(data, "validation")
