"""SQLAlchemy 2.0 typed models: the Warden ledger.

Decisions are append-only: a correction is a new row whose `supersedes_id` points at the row
it replaces; nothing is updated in place. Items carry their current lease (holder + expiry) so
a claim is one atomic UPDATE; `claims` keeps the history of who held what.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Items still in the review/scoring queue; the partial index below covers exactly these, and
# queries that want it must repeat this clause verbatim (SQLite matches partial-index terms
# literally). On SQLite the unary plus (a no-op) keeps the status index from competing for the
# same term; PostgreSQL proves the predicate itself and has no unary plus for text.
OPEN_ITEMS_SQL = "status IN ('queued', 'scored', 'in_review')"
OPEN_ITEMS_SQLITE = "+status IN ('queued', 'scored', 'in_review')"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginSession(Base):
    """One browser login. The cookie carries a random id; this row holds its SHA-256, so every
    process checks (and ends) the same session: logout, a password or role change and disabling
    the user set `ended_at`, and the next request in any process is refused."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_why: Mapped[str | None] = mapped_column(String(32))


class Blob(Base):
    """Content-addressed file on disk at blobs/<sha[:2]>/<sha[2:4]>/<sha>."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mime: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_claimable", "status", "priority", "created_at"),
        # The review queue over open items only, so storage.queue.claim_next walks an index
        # instead of sorting the backlog. PostgreSQL gets the queue order itself (priority
        # DESC, created_at, id); SQLite gets all-ascending columns (Alembic cannot autogenerate
        # DESC expressions there) and claim_next walks it in two steps.
        Index(
            "ix_items_open_queue",
            "priority",
            "created_at",
            "id",
            postgresql_ops={"priority": "DESC"},
            postgresql_where=text(OPEN_ITEMS_SQL),
            sqlite_where=text(OPEN_ITEMS_SQLITE),
        ),
        Index("ix_items_phash", "phash"),
        UniqueConstraint("blob_sha256", name="uq_items_blob"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    # Normalised RGB derivative (EXIF applied, first frame, 8-bit) that the model and UI use;
    # the original bytes stay untouched under blob_sha256 as evidence.
    view_sha256: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(128), default="cli")
    external_id: Mapped[str | None] = mapped_column(String(256))
    filename: Mapped[str | None] = mapped_column(String(512))
    text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # 64-bit perceptual hash as 16 hex chars.
    phash: Mapped[str | None] = mapped_column(String(16))
    animated: Mapped[bool] = mapped_column(Boolean, default=False)
    near_duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"))
    near_duplicate_distance: Mapped[int | None] = mapped_column(Integer)
    hashbank_match_id: Mapped[int | None] = mapped_column(ForeignKey("hash_bank.id"))
    # Current lease: who holds it and until when. NULL holder = unclaimed.
    lease_holder: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    lease_token: Mapped[str | None] = mapped_column(String(36))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    blob: Mapped[Blob] = relationship(lazy="joined")


class ItemMedium(Base):
    """One medium of an item: an image of a post or a sampled frame of a video (position 0 is
    the cover, the same medium as `Item.view_sha256`). A single image is the N = 1 case."""

    __tablename__ = "item_media"
    __table_args__ = (UniqueConstraint("item_id", "position", name="uq_item_media_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    # Original bytes of an image; for a frame, the decoded frame itself (PNG).
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    view_sha256: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="image")  # image | frame
    timestamp_s: Mapped[float | None] = mapped_column(Float)  # frames only
    phash: Mapped[str | None] = mapped_column(String(16))
    # Per-medium signals, written by the scoring worker.
    ocr_text: Mapped[str | None] = mapped_column(Text)
    ocr_boxes: Mapped[list[Any]] = mapped_column(default=list)
    nsfw_score: Mapped[float | None] = mapped_column(Float)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Claim(Base):
    """History of leases: one row per claim, closed by release, decision or expiry."""

    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    holder: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # review | score
    token: Mapped[str] = mapped_column(String(36), unique=True)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(String(16))  # decided|released|escalated|scored


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("item_id", "model_version", "policy_version", name="uq_prediction"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    model_version: Mapped[str] = mapped_column(String(256))
    policy_version: Mapped[str] = mapped_column(String(64))
    scores: Mapped[dict[str, Any]] = mapped_column()
    flagged: Mapped[list[Any]] = mapped_column()
    rationale: Mapped[str | None] = mapped_column(Text)
    ocr_text: Mapped[str | None] = mapped_column(Text)
    raw_reply: Mapped[str | None] = mapped_column(Text)
    parse_ok: Mapped[bool | None] = mapped_column(Boolean)
    signals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("source", "external_ref", name="uq_decision_external"),
        Index("ix_decisions_item_created", "item_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    action: Mapped[str] = mapped_column(String(16), default="label")
    categories: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(String(16))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Free-form identity for reviewers outside Warden's users (Label Studio annotators).
    reviewer_name: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    policy_version: Mapped[str | None] = mapped_column(String(64))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    # Idempotency key from outside (e.g. "ls:<project>:<annotation>:<updated_at>").
    external_ref: Mapped[str | None] = mapped_column(String(256))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class HashBankEntry(Base):
    """Perceptual hashes of items decided as violating; new items are matched against them."""

    __tablename__ = "hash_bank"

    id: Mapped[int] = mapped_column(primary_key=True)
    phash: Mapped[str] = mapped_column(String(16), index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", use_alter=True))
    categories: Mapped[list[Any]] = mapped_column(default=list)
    added_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    uri: Mapped[str] = mapped_column(String(1024))  # hub id or local directory
    base_model: Mapped[str | None] = mapped_column(String(1024))
    adapter_uri: Mapped[str | None] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), default="candidate")  # candidate|live|retired
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    calibration: Mapped[dict[str, Any]] = mapped_column(default=dict)
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column()


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    path: Mapped[str] = mapped_column(String(1024))
    data_hash: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    card: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"))
    base_model: Mapped[str] = mapped_column(String(1024))
    output_uri: Mapped[str] = mapped_column(String(1024))
    method: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="running")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class OutboxMessage(Base):
    """Work for an external system (Label Studio), retried with backoff until done."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    # Idempotency key: the same logical message is enqueued once.
    key: Mapped[str] = mapped_column(String(256), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column()


class LabelStudioTask(Base):
    """Which Warden item became which Label Studio task, so nothing is pushed twice."""

    __tablename__ = "labelstudio_tasks"
    __table_args__ = (UniqueConstraint("project_id", "task_id", name="uq_ls_task"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    project_id: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[int | None] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32))
    round: Mapped[int] = mapped_column(Integer, default=1)
    pushed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
