"""Receipts: the sender's handle on a secret.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Secrets stored before this revision keep working: their `receipt_id` is null.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lookup_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint("lookup_hash", name=op.f("uq_receipts_lookup_hash")),
    )
    op.create_index(
        op.f("ix_receipts_retain_until"), "receipts", ["retain_until"], unique=False
    )
    with op.batch_alter_table("secrets") as batch:
        batch.add_column(sa.Column("receipt_id", sa.Uuid(), nullable=True))
        batch.create_index(batch.f("ix_secrets_receipt_id"), ["receipt_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("secrets") as batch:
        batch.drop_index(batch.f("ix_secrets_receipt_id"))
        batch.drop_column("receipt_id")
    op.drop_index(op.f("ix_receipts_retain_until"), table_name="receipts")
    op.drop_table("receipts")
