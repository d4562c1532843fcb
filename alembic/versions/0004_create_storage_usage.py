"""Storage usage: the totals the quota is checked against, kept with every write.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The secrets already stored are counted once, here; from then on every create and every
deletion keeps the totals (`api.storage.usage`).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Row 0 takes the creates, rows 1..32 the deletions (api.storage.usage.RELEASE_SHARDS).
SHARDS = 33


def upgrade() -> None:
    usage = op.create_table(
        "storage_usage",
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("stored_secrets", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_storage_usage")),
    )
    op.bulk_insert(usage, [{"shard": shard} for shard in range(SHARDS)])
    op.execute(
        "UPDATE storage_usage SET"
        " stored_bytes = (SELECT coalesce(sum(length(ciphertext)), 0) FROM secrets),"
        " stored_secrets = (SELECT count(*) FROM secrets)"
        " WHERE shard = 0"
    )


def downgrade() -> None:
    op.drop_table("storage_usage")
