"""The backend Protocol: score a batch of items against a policy, return Verdicts.

The UI and the scoring worker know this Protocol, not the library behind it. Implementations:
`model.transformers_backend.TransformersBackend` (local VLM, 4-bit on CUDA) and
`model.openai_backend.OpenAIBackend` (vLLM or any OpenAI-compatible server).
torch and transformers are imported inside the implementations, never here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL.Image import Image

    from storage.domain import Verdict
    from storage.policy import Policy


@dataclass(frozen=True)
class MediumInput:
    """One image of a post or frame of a video, with its own OCR text (the prompt's hint)."""

    image: Image
    ocr_text: str | None = None
    label: str = "Image 1"  # "Image 2", "Frame 3 (1.5 s)": how the prompt names it


@dataclass(frozen=True)
class ScoringInput:
    """One item to score: its media (images or frames), the text posted beside them, cheap-signal
    results. A single image is the N = 1 case: `image` (+ `ocr_text`) and no `media`; an item of
    several media lists them all in `media` (cover first), `image` being the cover."""

    image: Image
    text: str | None = None
    # OCR text from model.signals; goes into the prompt as a hint.
    ocr_text: str | None = None
    item_id: int | None = None
    signals: dict[str, object] = field(default_factory=dict)
    media: tuple[MediumInput, ...] = ()

    @property
    def images(self) -> list[Image]:
        """Every image the prompt shows, in order (just `image` for N = 1)."""
        return [m.image for m in self.media] if self.media else [self.image]

    @property
    def media_ocr(self) -> list[tuple[str, str | None]] | None:
        """(label, OCR text) per medium for the prompt; None for N = 1 (the plain OCR hint)."""
        if len(self.media) <= 1:
            return None
        return [(m.label, m.ocr_text) for m in self.media]

    def single_media(self) -> list[ScoringInput]:
        """One N = 1 input per medium (same text): the per-medium evidence pass scores these."""
        return [
            ScoringInput(image=m.image, text=self.text, ocr_text=m.ocr_text, item_id=self.item_id)
            for m in (self.media or (MediumInput(self.image, self.ocr_text),))
        ]


@runtime_checkable
class Backend(Protocol):
    @property
    def model_version(self) -> str: ...

    def score(
        self,
        items: Sequence[ScoringInput],
        policy: Policy,
        *,
        rationale: bool = False,
    ) -> list[Verdict]:
        """One Verdict per item, in order. `rationale=True` also generates a strict-JSON
        rationale; an unparsable reply sets `parse_ok=False` and keeps the raw text."""
        ...
