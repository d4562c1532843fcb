"""How much the store holds, kept with every write so a create never counts the table."""

from sqlalchemy import BigInteger, Column, Integer
from sqlmodel import Field, SQLModel

import models.base  # noqa: F401  (sets the naming convention before the table is declared)


class StorageUsage(SQLModel, table=True):
    """One share of the totals; the store holds the sum over all rows.

    Creates add to row 0 only, in the same transaction as their INSERT, and only if the sum
    stays within the quota. Deletions subtract from one of the other rows that no one else
    holds, so that reveals and the purge do not queue behind creates or each other on a
    single row (those rows go negative; only the sum means anything). `api.storage.usage`
    explains why this is exact.
    """

    __tablename__ = "storage_usage"

    shard: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    stored_bytes: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    stored_secrets: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
