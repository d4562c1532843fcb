"""The storage quota's figures: totals kept with every write, never counted per create.

`storage_usage` holds the totals in shares (`models.StorageUsage`): creates add to row 0,
deletions subtract from one of rows 1..`RELEASE_SHARDS` that no other transaction holds
(PostgreSQL's SKIP LOCKED), so a reveal or a purge batch does not queue behind the creates
or each other on one hot row.

Why the quota is exact, with no slack, under concurrent creates on any number of processes:
`RESERVE` is one UPDATE of row 0 whose WHERE checks the sum after the increment. Two creates
serialise on row 0's lock; PostgreSQL re-checks the second one's WHERE against the first
one's committed row, and SQLite runs one writer at a time. The other rows only ever go down
(deletions), so reading them from a snapshot a moment old can only overstate the total: a
create racing a deletion may be refused for room that is being freed at that instant, never
admitted past the limit. The reservation is in the transaction that inserts the secret, so a
refused create stores nothing, and a deletion frees its room in the transaction that deletes.

Rows written or deleted behind the service's back (by hand, by a restore) are not counted:
`ots-admin storage recount` sets the totals from the table again.
"""

import random

from sqlalchemy import Table, bindparam, func, select, text, update

from api.storage.database import Database, Transaction
from models import StorageUsage

RECOUNT_LOCK_WAIT = "2s"
RELEASE_SHARDS = 32  # rows 1..32; alembic 0004 creates them
CREATE_SHARD = 0

usage_table: Table = StorageUsage.__table__  # type: ignore[attr-defined]
usage_columns = usage_table.c
_others = usage_table.alias("others")
_OTHER_BYTES = (
    select(func.coalesce(func.sum(_others.c.stored_bytes), 0))
    .where(_others.c.shard != CREATE_SHARD)
    .scalar_subquery()
)
_OTHER_SECRETS = (
    select(func.coalesce(func.sum(_others.c.stored_secrets), 0))
    .where(_others.c.shard != CREATE_SHARD)
    .scalar_subquery()
)
# Adds one secret of `size` bytes if both totals stay within their limits; no row: refused.
RESERVE = (
    update(usage_table)
    .where(
        usage_columns.shard == CREATE_SHARD,
        usage_columns.stored_bytes + bindparam("size") + _OTHER_BYTES <= bindparam("max_bytes"),
        usage_columns.stored_secrets + 1 + _OTHER_SECRETS <= bindparam("max_secrets"),
    )
    .values(
        stored_bytes=usage_columns.stored_bytes + bindparam("size"),
        stored_secrets=usage_columns.stored_secrets + 1,
    )
    .returning(usage_columns.shard)
)
# A free release row, so concurrent deletions (reveals, purgers on several instances) never
# queue for one; only when all are taken does it wait, on the row picked at random.
FREE_SHARD = func.coalesce(
    select(_others.c.shard)
    .where(_others.c.shard != CREATE_SHARD)
    .order_by(func.random())
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery(),
    bindparam("release_shard"),
)
RELEASE = (
    update(usage_table)
    .where(usage_columns.shard == FREE_SHARD)
    .values(
        stored_bytes=usage_columns.stored_bytes - bindparam("size"),
        stored_secrets=usage_columns.stored_secrets - bindparam("count"),
    )
)


TOTALS = select(
    func.coalesce(func.sum(usage_columns.stored_bytes), 0),
    func.coalesce(func.sum(usage_columns.stored_secrets), 0),
)


def release_shard() -> int:
    """Pick the row a deletion subtracts from."""
    return random.randint(1, RELEASE_SHARDS)  # noqa: S311  (spreads load, guards nothing)


async def reserve(transaction: Transaction, *, size: int, max_bytes: int, max_secrets: int) -> bool:
    """Count one more secret of `size` bytes, if it fits; say whether it did."""
    rows = await transaction.execute(
        RESERVE, size=size, max_bytes=max_bytes, max_secrets=max_secrets
    )
    return bool(rows)


async def release(transaction: Transaction, *, sizes: list[int]) -> None:
    """Stop counting the deleted secrets whose ciphertexts had `sizes` bytes."""
    if sizes:
        await transaction.execute(
            RELEASE, release_shard=release_shard(), size=sum(sizes), count=len(sizes)
        )


async def totals(db: Database) -> tuple[int, int]:
    """Return (stored bytes, stored secrets): 33 small rows summed, not the secrets table."""
    rows = await db.execute(TOTALS)
    return int(rows[0][0]), int(rows[0][1])


async def recount(db: Database) -> tuple[int, int]:
    """Set the totals from the secrets table itself; return them.

    Creates and deletions wait meanwhile (PostgreSQL: a SHARE lock on `secrets`; SQLite: the
    write lock), so no write falls between the count and the new totals.
    """
    async with db.transaction() as transaction:
        if db.dialect == "postgresql":
            # A queued lock request would hold every writer behind it: give up instead.
            await transaction.execute(text(f"SET LOCAL lock_timeout = '{RECOUNT_LOCK_WAIT}'"))
            await transaction.execute(text("LOCK TABLE secrets IN SHARE MODE"))
        await transaction.execute(update(usage_table).values(stored_bytes=0, stored_secrets=0))
        await transaction.execute(
            text(
                "UPDATE storage_usage SET"
                " stored_bytes = (SELECT coalesce(sum(length(ciphertext)), 0) FROM secrets),"
                " stored_secrets = (SELECT count(*) FROM secrets)"
                " WHERE shard = 0"
            )
        )
    return await totals(db)
