"""Evidence regions: where on an item's images sits what drove its verdict.

Two kinds of region go into the prediction's `signals["evidence_regions"]`, one list, so that
the review card draws them (app/evidence_overlay.py) and an export can turn them into boxes
per category later:

    {"position": 0,              # which medium of the item (0 = the cover)
     "category": "drugs" | None, # None: a line worth seeing that no category was tied to
     "box": [x0, y0, x1, y1],    # pixels of that medium's stored view
     "image_size": [w, h],       # of that view (the card draws in percentages of it)
     "source": "ocr" | "model",  # an OCR line's box, or a box the model drew (model.grounding)
     "why": "reader" | "attribution" | "grounding",
     "text": "...", "read_as": "...", "weight": 0.31}   # OCR regions only; weight: score gain

OCR regions (this module), from each medium's OCR lines (model.signals keeps their boxes):
- reader: lines holding words the model's learnt reader (model.reading) rewrote: evasive
  writing the model read back ("fr33 m0n3y" -> "free money"). Free: the reader runs per line.
- attribution (opt-in, WARDEN_WORKER__REGION_EVIDENCE; it costs one extra prompt per OCR line
  of a flagged item, plus one): the phrases scored highest. The item is scored again with each
  line as its only OCR text, and once with none (same image and posted text); a line's weight
  for a flagged category is its score alone minus the score with no OCR text. The heaviest
  lines are that category's evidence (at most MAX_PER_CATEGORY, each at least MIN_GAIN and a
  share of the heaviest). Only flagged items pay, and at most MAX_LINES lines each.
  Leaving one line out instead was tried and rejected: on the demo model a saturated score
  (0.999) barely moves when the one line that says "cocaine" goes, while a line that only
  backs it up ("Cash only") moved it most; alone, the cocaine line scores 0.996 and "Cash
  only" 0.113 (no OCR text: 0.002).

    verdicts = add_ocr_regions(backend, inputs, verdicts, policy, lines, attribute=True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from model.media import combined_ocr_text

if TYPE_CHECKING:
    from model.backends import Backend, ScoringInput
    from model.ocr_scripts import OCRLine
    from model.reading import Reader
    from storage.domain import Verdict
    from storage.policy import Policy

REGIONS_KEY = "evidence_regions"
# Attribution: lines per item scored alone (the longest item of a batch bounds its cost), and
# which gains count as evidence.
MAX_LINES = 12
MAX_PER_CATEGORY = 3
MIN_GAIN = 0.05
MIN_SHARE = 0.25


@dataclass(frozen=True)
class MediumLines:
    """One medium's OCR lines and the size of the view they were read on."""

    position: int
    lines: tuple[OCRLine, ...]
    image_size: tuple[int, int] | None


def _region(m: MediumLines, line: OCRLine, **extra: Any) -> dict[str, Any]:
    size = m.image_size or (0, 0)
    return {
        "position": m.position,
        "box": [round(float(v), 1) for v in line.box],
        "image_size": [int(size[0]), int(size[1])],
        "source": "ocr",
        "text": line.text.strip(),
        **extra,
    }


def reader_regions(reader: Reader | None, media: Sequence[MediumLines]) -> list[dict[str, Any]]:
    """A region (no category) for every line the reader reads differently from its raw text."""
    if reader is None:
        return []
    out = []
    for m in media:
        for line in m.lines:
            text = line.text.strip()
            read = reader.read(text) if text else text
            if read != text:
                out.append(_region(m, line, category=None, why="reader", read_as=read))
    return out


def _only(
    inp: ScoringInput, media: Sequence[MediumLines], spot: tuple[int, int] | None
) -> ScoringInput:
    """`inp` with line `spot` = (medium, line) as its only OCR text (None: no OCR text)."""
    texts = ["" for _ in media]
    if spot is not None:
        texts[spot[0]] = media[spot[0]].lines[spot[1]].text.strip()
    if not inp.media:
        return replace(inp, ocr_text=texts[0])
    new_media = tuple(
        replace(mi, ocr_text=t if mi.ocr_text is not None else None)
        for mi, t in zip(inp.media, texts, strict=True)
    )
    labels = [mi.label for mi in inp.media]
    return replace(inp, media=new_media, ocr_text=combined_ocr_text(labels, texts))


def _hinted(inp: ScoringInput, media: Sequence[MediumLines]) -> bool:
    """Whether the prompt holds these media's OCR lines (no OCR hint: nothing to leave out)."""
    if inp.media:
        return len(inp.media) == len(media) and all(m.ocr_text is not None for m in inp.media)
    return len(media) == 1 and inp.ocr_text is not None


def attribution_plan(
    inp: ScoringInput, verdict: Verdict, media: Sequence[MediumLines]
) -> list[tuple[int, int]]:
    """(medium index, line index) of the lines to score alone, in order; [] when the item is
    not flagged or its prompt holds no OCR hint. The MAX_LINES longest lines when there are
    more."""
    if not verdict.flagged or not _hinted(inp, media):
        return []
    spots = [(k, j) for k, m in enumerate(media) for j, line in enumerate(m.lines)]
    spots = [(k, j) for k, j in spots if media[k].lines[j].text.strip()]
    if len(spots) > MAX_LINES:
        spots = sorted(spots, key=lambda s: -len(media[s[0]].lines[s[1]].text))[:MAX_LINES]
        spots.sort()
    return spots


def attributed_regions(
    verdict: Verdict,
    media: Sequence[MediumLines],
    spots: Sequence[tuple[int, int]],
    alone: Sequence[Verdict],
    without: Verdict,
) -> list[dict[str, Any]]:
    """Regions of the lines that, alone, raise a flagged category's score most over the item
    with no OCR text (`alone[i]`: the item scored with line `spots[i]` only)."""
    out = []
    for category in verdict.flagged:
        base = float(without.scores.get(category, 0.0))
        gains = [float(v.scores.get(category, 0.0)) - base for v in alone]
        if not gains:
            continue
        top = max(gains)
        ranked = sorted(range(len(spots)), key=lambda i: -gains[i])[:MAX_PER_CATEGORY]
        for i in ranked:
            if gains[i] < MIN_GAIN or gains[i] < MIN_SHARE * top:
                continue
            k, j = spots[i]
            region = _region(
                media[k],
                media[k].lines[j],
                category=category,
                why="attribution",
                weight=round(gains[i], 4),
            )
            out.append(region)
    return out


def add_ocr_regions(
    backend: Backend,
    inputs: Sequence[ScoringInput],
    verdicts: Sequence[Verdict | BaseException],
    policy: Policy,
    lines: Mapping[int, Sequence[MediumLines]],
    *,
    attribute: bool,
) -> list[Verdict | BaseException]:
    """`verdicts` with their OCR regions appended to `signals["evidence_regions"]` (after any
    region the backend drew). `lines`: each item's media lines, by item id. With `attribute`
    the flagged items' lines are scored alone (and the item without OCR text), in one
    `backend.score` call."""
    reader = getattr(backend, "reader", None)
    plans: dict[int, list[tuple[int, int]]] = {}
    extra_inputs: list[ScoringInput] = []
    for i, (inp, verdict) in enumerate(zip(inputs, verdicts, strict=True)):
        media = lines.get(inp.item_id, ()) if inp.item_id is not None else ()
        if attribute and media and not isinstance(verdict, BaseException):
            plan = attribution_plan(inp, verdict, media)
            if plan:
                plans[i] = plan
                extra_inputs += [_only(inp, media, spot) for spot in plan]
                extra_inputs.append(_only(inp, media, None))
    scored = backend.score(extra_inputs, policy) if extra_inputs else []
    out: list[Verdict | BaseException] = []
    at = 0
    for i, (inp, verdict) in enumerate(zip(inputs, verdicts, strict=True)):
        media = lines.get(inp.item_id, ()) if inp.item_id is not None else ()
        if isinstance(verdict, BaseException) or not media:
            out.append(verdict)
            continue
        regions = reader_regions(reader, media)
        if i in plans:
            n = len(plans[i])
            alone, without = scored[at : at + n], scored[at + n]
            regions += attributed_regions(verdict, media, plans[i], alone, without)
            at += n + 1
        if not regions:
            out.append(verdict)
            continue
        before = verdict.signals.get(REGIONS_KEY)
        merged = [*(before if isinstance(before, list) else []), *regions]
        out.append(replace(verdict, signals={**verdict.signals, REGIONS_KEY: merged}))
    return out
