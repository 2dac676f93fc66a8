"""item media: the images of a post and the sampled frames of a video

Revision ID: 0003_item_media
Revises: 0002_sessions
Create Date: 2026-12-04 20:30:00

Every existing item gets one row (position 0, kind 'image') pointing at its own blob and view,
so an old database reads as N = 1 items everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0003_item_media"
down_revision: str | None = "0002_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "item_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("view_sha256", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("timestamp_s", sa.Float(), nullable=True),
        sa.Column("phash", sa.String(length=16), nullable=True),
        sa.Column("ocr_text", sa.Text(), nullable=True),
        sa.Column("ocr_boxes", sa.JSON(), nullable=False),
        sa.Column("nsfw_score", sa.Float(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["blob_sha256"], ["blobs.sha256"]),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "position", name="uq_item_media_position"),
    )
    with op.batch_alter_table("item_media", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_media_item_id"), ["item_id"], unique=False)
    # Backfill: one medium per existing item, the item's own image. The JSON literals are
    # plain strings, which both SQLite and PostgreSQL (json from unknown) accept.
    op.execute(
        "INSERT INTO item_media (item_id, position, blob_sha256, view_sha256, kind, phash, "
        "ocr_boxes, meta, created_at) "
        "SELECT id, 0, blob_sha256, view_sha256, 'image', phash, '[]', '{}', created_at "
        "FROM items"
    )


def downgrade() -> None:
    with op.batch_alter_table("item_media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_media_item_id"))
    op.drop_table("item_media")
