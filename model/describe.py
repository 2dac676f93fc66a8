"""Descriptions for text-first review: the model writes what each image or frame shows.

A backend that can generate (`TransformersBackend.describe`, `OpenAIBackend.describe`) writes a
detailed description of every medium of an item, VisionPangu-style (objects, people, actions,
visible text, setting), from one fixed prompt (`model.prompts.describe_messages`). The scoring
worker asks for them when the deployment turns them on (`WARDEN_MODEL__DESCRIBE=true`; they
cost a generation of up to `WARDEN_MODEL__DESCRIBE_MAX_NEW_TOKENS` tokens per medium), in one
batched call for all media of the batch it scores, and stores them with the prediction as
`signals["description"]`:

    {"status": "written", "seconds": 0.84, "max_new_tokens": 256,
     "media": [{"position": 0, "kind": "image", "timestamp_s": null, "label": "Image 1",
                "text": "A man holds a sign reading ..."}, ...]}
    {"status": "unavailable", "reason": "cannot_see_images"}     # the demo model: never asked
    {"status": "failed", "error": "..."}                          # generation raised

`seconds` is the item's share of the batch's generation time (by media). A model that cannot
see pixels (the demo checkpoint, a classifier over OCR text, and anything refined from it: its
folder holds `demo_card.json`) never generates one: its predictions say so, whatever the
setting, and the card says plainly that there is no description. Model output is untrusted
text: control characters are dropped here and the card escapes the rest.

    verdicts, stats = add_descriptions(backend, inputs, verdicts, media, max_new_tokens=256)
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model import prompts

if TYPE_CHECKING:
    from PIL.Image import Image

    from model.backends import Backend, ScoringInput
    from storage.domain import Verdict
    from storage.media import Medium

log = logging.getLogger(__name__)

DESCRIPTION_KEY = "description"  # the prediction's signals key
# The demo checkpoint's card (training/pretrain.py writes it; training.recipes.pick reads it).
DEMO_CARD = "demo_card.json"
BLIND_REASON = "cannot_see_images"
MAX_DESCRIPTION_CHARS = 4000
# Greedy decoding of a long description loops ("a man, a man, a man"); no 4-gram may repeat.
NO_REPEAT_NGRAM = 4

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_BLANK_RUN = re.compile(r"\n\s*\n\s*(\n\s*)+")


def sees_images(model_dir: str | Path | None) -> bool:
    """False for the demo checkpoint and models refined from it (their folder holds its card):
    a classifier over the OCR text, which cannot describe pixels."""
    if model_dir is None:
        return True
    folder = Path(model_dir)
    return not (folder.is_dir() and (folder / DEMO_CARD).is_file())


def clean(text: str) -> str:
    """A description as stored: control and bidi-override characters dropped (a random or
    hostile model's bytes), runs of blank lines folded, stripped, capped."""
    text = _BLANK_RUN.sub("\n\n", _CONTROL.sub("", text)).strip()
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[: MAX_DESCRIPTION_CHARS - 1].rstrip() + "…"
    return text


def generate_descriptions(
    model: Any,
    processor: Any,
    images: Sequence[Image],
    kinds: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """Greedy descriptions of `images` (a batch of single-image prompts per `batch_size`)."""
    import torch

    from model.scoring import _processor_inputs

    tok = processor.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    texts = {
        kind: processor.apply_chat_template(
            prompts.describe_messages(kind), add_generation_prompt=True, tokenize=False
        )
        for kind in set(kinds)
    }
    out: list[str] = []
    step = max(1, batch_size)
    for start in range(0, len(images), step):
        chunk = list(images[start : start + step])
        enc = _processor_inputs(
            processor,
            [texts[k] for k in kinds[start : start + step]],
            chunk,
            model.device,
            model.dtype,
        )
        with torch.inference_mode():
            generated = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                no_repeat_ngram_size=NO_REPEAT_NGRAM,
                pad_token_id=pad,
            )
        width = enc["input_ids"].shape[1]
        out += [clean(tok.decode(row[width:], skip_special_tokens=True)) for row in generated]
    return out


def unavailable_record() -> dict[str, Any]:
    return {"status": "unavailable", "reason": BLIND_REASON}


@dataclass(frozen=True)
class DescribeStats:
    """What one batch's descriptions cost: media described and seconds spent generating."""

    media: int = 0
    seconds: float = 0.0


def _media_rows(inp: ScoringInput, stored: Sequence[Medium] | None) -> list[dict[str, Any]]:
    """Position, kind, timestamp and prompt label of each medium the input shows."""
    n = len(inp.images)
    if stored is not None and len(stored) == n:
        return [
            {"position": m.position, "kind": m.kind, "timestamp_s": m.timestamp_s, "label": m.label}
            for m in stored
        ]
    labels = [m.label for m in inp.media] if inp.media else ["Image 1"]
    return [
        {"position": k, "kind": "image", "timestamp_s": None, "label": labels[k]} for k in range(n)
    ]


def add_descriptions(
    backend: Backend,
    inputs: Sequence[ScoringInput],
    results: Sequence[Verdict | BaseException],
    media: Mapping[int, Sequence[Medium]] | None = None,
    *,
    enabled: bool = True,
    max_new_tokens: int = 256,
) -> tuple[list[Verdict | BaseException], DescribeStats]:
    """`results` with `signals["description"]` on every verdict (see the module docstring).

    A backend that cannot see images gets the "unavailable" record (nothing generated, on or
    off); with `enabled` off, or a backend without `describe`, nothing changes. A failure of
    the generation is recorded on the verdicts and never fails the scores (a systemic backend
    failure is raised, as everywhere in the worker)."""
    from storage.domain import Verdict

    out = list(results)
    scored = [i for i, r in enumerate(out) if isinstance(r, Verdict)]
    if not scored:
        return out, DescribeStats()

    def attach(i: int, record: dict[str, Any]) -> None:
        verdict = out[i]
        assert isinstance(verdict, Verdict)
        out[i] = replace(verdict, signals={**verdict.signals, DESCRIPTION_KEY: record})

    if not getattr(backend, "sees_images", True):
        for i in scored:
            attach(i, unavailable_record())
        return out, DescribeStats()
    describe = getattr(backend, "describe", None)
    if not enabled or describe is None:
        return out, DescribeStats()
    rows = {i: _media_rows(inputs[i], (media or {}).get(inputs[i].item_id or -1)) for i in scored}
    images = [im for i in scored for im in inputs[i].images]
    kinds = [r["kind"] for i in scored for r in rows[i]]
    t0 = time.perf_counter()
    try:
        texts = list(describe(images, kinds, max_new_tokens=max_new_tokens))
        if len(texts) != len(images):
            raise RuntimeError(f"{len(texts)} descriptions for {len(images)} media")
    except Exception as exc:
        if getattr(exc, "systemic", False):
            raise
        log.warning("descriptions failed for this batch: %s", exc)
        for i in scored:
            attach(i, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]})
        return out, DescribeStats(0, time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    at = 0
    for i in scored:
        n = len(rows[i])
        described = [
            {**row, "text": clean(str(t))}
            for row, t in zip(rows[i], texts[at : at + n], strict=True)
        ]
        at += n
        attach(
            i,
            {
                "status": "written",
                "seconds": round(seconds * n / len(images), 4),
                "max_new_tokens": max_new_tokens,
                "media": described,
            },
        )
    return out, DescribeStats(len(images), seconds)
