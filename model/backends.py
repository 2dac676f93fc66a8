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
class ScoringInput:
    """One item to score: the decoded image, the text posted beside it, cheap-signal results."""

    image: Image
    text: str | None = None
    # OCR text from model.signals; goes into the prompt as a hint.
    ocr_text: str | None = None
    item_id: int | None = None
    signals: dict[str, object] = field(default_factory=dict)


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
