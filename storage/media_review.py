"""The review card's media: each image of a post or frame of a video blurred on its own and
revealed on its own (each reveal an audit event naming the medium).

A medium is blurred by the same rule as a single image (`storage.review.should_blur`), applied
to its own signals: its NSFW score and, when the prediction carries per-medium evidence
(`model.evidence`), its own category scores (otherwise the item's). An unscored item keeps
every medium blurred. Revealing medium k records `reveal` with `position: k` in the audit
(exposure counts every reveal); a reveal without a position (the single-image card) is the
cover's. Frames of a video come worst first (highest own category score), as the card shows
them; images of a post keep their order.

    views = media_views(s, item_id, "alice", policy, blur_nsfw_threshold=0.4)
    reveal_medium(s, "alice", item_id, 2, policy=policy)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.audit import record_audit
from storage.errors import NotFound
from storage.media import media_of
from storage.models import AuditEvent
from storage.policy import Policy
from storage.review import (
    Exposure,
    _latest_predictions,
    blur_reason,
    check_reveal,
    exposure,
    reveal,
    should_blur,
)


@dataclass(frozen=True)
class MediumView:
    """One medium as the card shows it (its OCR text is untrusted user content)."""

    position: int
    label: str
    kind: str
    timestamp_s: float | None
    blurred: bool  # by its own signals
    revealed: bool  # this reviewer revealed it
    blur_reason: str
    ocr_text: str | None
    worst_score: float  # its highest own category score (0 when unscored)

    @property
    def show_raw(self) -> bool:
        return not self.blurred or self.revealed


def revealed_positions(s: Session, reviewer: str, item_id: int) -> set[int]:
    """Positions of the media `reviewer` revealed on this item (no position = the cover)."""
    rows = s.scalars(
        select(AuditEvent.details).where(
            AuditEvent.item_id == item_id,
            AuditEvent.actor == reviewer,
            AuditEvent.action == "reveal",
        )
    )
    out: set[int] = set()
    for details in rows:
        position = (details or {}).get("position", 0)
        if isinstance(position, int):
            out.add(position)
    return out


def media_views(
    s: Session, item_id: int, reviewer: str, policy: Policy, *, blur_nsfw_threshold: float
) -> list[MediumView]:
    """Every medium of the item with its own blur and this reviewer's reveals."""
    media = media_of(s, item_id)
    if not media:
        raise NotFound(f"item {item_id} does not exist")
    prediction = _latest_predictions(s, [item_id]).get(item_id)
    scored = prediction is not None
    item_scores: dict[str, float] = dict(prediction.scores) if prediction else {}
    evidence: dict[str, Any] = (
        (prediction.signals or {}).get("media_evidence") or {} if prediction else {}
    )
    own = {int(m["position"]): dict(m.get("scores") or {}) for m in evidence.get("media", [])}
    item_nsfw = (prediction.signals or {}).get("nsfw") if prediction else None
    revealed = revealed_positions(s, reviewer, item_id)
    views = []
    for m in media:
        scores = own.get(m.position, item_scores)
        nsfw = m.nsfw_score if m.nsfw_score is not None else item_nsfw
        kw = {"scored": scored, "blur_nsfw_threshold": blur_nsfw_threshold}
        views.append(
            MediumView(
                position=m.position,
                label=m.label,
                kind=m.kind,
                timestamp_s=m.timestamp_s,
                blurred=should_blur(policy, scores, nsfw, **kw),  # type: ignore[arg-type]
                revealed=m.position in revealed,
                blur_reason=blur_reason(policy, scores, nsfw, **kw),  # type: ignore[arg-type]
                ocr_text=m.ocr_text,
                worst_score=max(scores.values(), default=0.0),
            )
        )
    if views and all(v.kind == "frame" for v in views):
        views.sort(key=lambda v: (-v.worst_score, v.position))
    return views


def reveal_medium(
    s: Session, reviewer: str, item_id: int, position: int, *, policy: Policy
) -> Exposure:
    """Record that `reviewer` revealed medium `position`: the same lease and restricted-role
    checks as `storage.review.reveal` (position 0 is exactly that reveal)."""
    if position == 0:
        return reveal(s, reviewer, item_id, policy=policy)
    if position not in {m.position for m in media_of(s, item_id)}:
        raise NotFound(f"item {item_id} has no medium {position}")
    check_reveal(s, reviewer, item_id, policy=policy)
    record_audit(s, reviewer, "reveal", item_id=item_id, position=position)
    s.flush()
    return exposure(s, reviewer)
