"""Notifications: receipts that tell their sender, and the outbox that does the telling.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Receipts stored before this revision have no `public_id` and asked for no notification.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.add_column(sa.Column("public_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("notify_url", sa.String(length=2048), nullable=True))
        batch.add_column(sa.Column("creator_token_id", sa.Uuid(), nullable=True))
        batch.create_unique_constraint(batch.f("uq_receipts_public_id"), ["public_id"])
    with op.batch_alter_table("creator_tokens") as batch:
        batch.add_column(
            sa.Column("signing_generation", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "notifications",
        sa.Column("receipt_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_notifications")),
    )
    op.create_index(
        "ix_notifications_state_next_attempt_at",
        "notifications",
        ["state", "next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_state_next_attempt_at", table_name="notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("creator_tokens") as batch:
        batch.drop_column("signing_generation")
    with op.batch_alter_table("receipts") as batch:
        batch.drop_constraint(batch.f("uq_receipts_public_id"), type_="unique")
        batch.drop_column("creator_token_id")
        batch.drop_column("notify_url")
        batch.drop_column("public_id")
