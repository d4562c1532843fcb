"""The sender's receipt: what became of a secret, kept after the secret is gone."""

import enum
import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, Integer, LargeBinary, String, Uuid
from sqlmodel import Field, SQLModel

import models.base  # noqa: F401  (sets the naming convention before the table is declared)


class StoredReceiptStatus(enum.StrEnum):
    """The values stored in `receipts.status`; the APIs' own enum is `api.domain.receipts`."""

    PENDING = "pending"  # stored, not expired
    REVEALED = "revealed"  # read by the recipient
    BURNED = "burned"  # destroyed unread by the recipient
    REVOKED = "revoked"  # destroyed by the sender through the receipt
    DESTROYED = "destroyed"  # too many wrong passphrases
    EXPIRED = "expired"  # its lifetime ran out unread


class Receipt(SQLModel, table=True):
    """A secret's history, found by SHA-256 of its receipt key (never stored itself).

    It holds no ciphertext and nothing derived from the secret, its passphrase or its key.
    `status` leaves `pending` once, in the same transaction that deletes the secret.

    - `public_id` names the receipt in notifications and logs: random, neither key, and
      derived from neither, so showing it gives nothing away.
    - `notify_url` (optional) is told once when the receipt leaves `pending` (the
      `notifications` outbox); `creator_token_id` says whose signing secret signs it.
    """

    __tablename__ = "receipts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    lookup_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    failed_attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    closed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    public_id: str | None = Field(
        default=None, sa_column=Column(String(32), nullable=True, unique=True)
    )
    notify_url: str | None = Field(default=None, sa_column=Column(String(2048), nullable=True))
    creator_token_id: uuid.UUID | None = Field(default=None, sa_column=Column(Uuid, nullable=True))
    # When the purge removes it: RECEIPT_RETENTION_SECONDS after the secret's expiry.
    retain_until: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
