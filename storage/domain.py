"""Domain objects that cross package boundaries: verdicts, decisions, claimed items.

ORM rows stay inside storage; these frozen dataclasses are what the model, training, UI and
CLI layers pass around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    moderator = "moderator"
    annotator = "annotator"
    engineer = "engineer"
    admin = "admin"


class ItemStatus(StrEnum):
    queued = "queued"
    scored = "scored"
    in_review = "in_review"
    decided = "decided"
    escalated = "escalated"
    # Scoring gave up after repeated failures (undecodable image, model error); see model.worker.
    failed = "failed"


class DecisionSource(StrEnum):
    moderator = "moderator"
    bulk = "bulk"
    label_studio = "label_studio"
    import_ = "import"
    loop = "loop"


class DecisionAction(StrEnum):
    label = "label"  # categories (empty = safe)
    retract = "retract"  # withdraws the decision it supersedes (undo, LS deletion)


@dataclass(frozen=True)
class Verdict:
    """What a backend returns for one item."""

    scores: dict[str, float]
    flagged: list[str]
    model_version: str
    policy_version: str
    latency_ms: float
    rationale: str | None = None
    ocr_text: str | None = None
    # Raw generated text when rationale/OCR was asked for; parse_ok False = unparsable reply.
    raw_reply: str | None = None
    parse_ok: bool | None = None
    signals: dict[str, object] = field(default_factory=dict)

    @property
    def safe(self) -> bool:
        return not self.flagged


@dataclass(frozen=True)
class Decision:
    id: int
    item_id: int
    action: DecisionAction
    categories: list[str]
    source: DecisionSource
    reviewer: str | None
    note: str | None
    policy_version: str | None
    supersedes_id: int | None
    created_at: datetime
    external_ref: str | None = None

    @property
    def safe(self) -> bool:
        return self.action == DecisionAction.label and not self.categories


@dataclass(frozen=True)
class ClaimedItem:
    """An item handed to one reviewer or worker under a lease."""

    item_id: int
    blob_sha256: str
    status: ItemStatus
    holder: str
    lease_expires_at: datetime
    priority: int
    text: str | None = None
    source: str | None = None
    filename: str | None = None
    # The normalised RGB view made at ingest (what the model and UI see); None for old rows.
    view_sha256: str | None = None
