"""Per-medium evidence: which image of a post (or frame of a video) drove which category.

The backend scores all media of an item in one prompt; a model cannot say from that one pass
which image it was looking at. So each medium is also scored alone (the N = 1 prompt with its
own OCR text and the post's text): a cheap pass, one shared-prefix batch for all media of the
batch's items. For every category the medium with the highest score is the one that drove it.
The result goes into the prediction's signals as `media_evidence`:

    {"by_category": {"scam_fraud": 2, ...},          # position of the driving medium (0-based)
     "flagged_by": {"scam_fraud": 2},                # the same, for the verdict's flags only
     "media": [{"position": 0, "label": "Image 1", "scores": {...}, "flagged": [...]}, ...]}

Items of one medium need no extra pass: their evidence is the item itself.

    verdicts = add_media_evidence(backend, inputs, verdicts, policy)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model.backends import Backend, ScoringInput
    from storage.domain import Verdict
    from storage.policy import Policy


def add_media_evidence(
    backend: Backend,
    inputs: Sequence[ScoringInput],
    verdicts: Sequence[Verdict | BaseException],
    policy: Policy,
) -> list[Verdict | BaseException]:
    """`verdicts` with `signals["media_evidence"]` on every item of several media."""
    singles: list[ScoringInput] = []
    spans: dict[int, tuple[int, int]] = {}
    for i, (inp, verdict) in enumerate(zip(inputs, verdicts, strict=True)):
        if len(inp.media) > 1 and not isinstance(verdict, BaseException):
            spans[i] = (len(singles), len(singles) + len(inp.media))
            singles += inp.single_media()
    if not singles:
        return list(verdicts)
    per_medium = backend.score(singles, policy)
    out = list(verdicts)
    for i, (start, end) in spans.items():
        verdict = out[i]
        assert not isinstance(verdict, BaseException)
        labels = [m.label for m in inputs[i].media]
        evidence = media_evidence(per_medium[start:end], labels, verdict.flagged)
        out[i] = replace(verdict, signals={**verdict.signals, "media_evidence": evidence})
    return out


def media_evidence(
    per_medium: Sequence[Verdict], labels: Sequence[str], flagged: Sequence[str]
) -> dict[str, object]:
    """The evidence record from each medium's own verdict (see the module docstring)."""
    categories = list(per_medium[0].scores)
    by_category = {
        c: max(range(len(per_medium)), key=lambda k: per_medium[k].scores.get(c, 0.0))
        for c in categories
    }
    return {
        "by_category": by_category,
        "flagged_by": {c: by_category[c] for c in flagged if c in by_category},
        "media": [
            {
                "position": k,
                "label": label,
                "scores": {c: round(float(v), 4) for c, v in v_.scores.items()},
                "flagged": list(v_.flagged),
            }
            for k, (label, v_) in enumerate(zip(labels, per_medium, strict=True))
        ],
    }
