"""The secrets table: an encrypted secret waiting to be revealed once."""

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, Integer, LargeBinary, String, Uuid
from sqlmodel import Field, SQLModel

import models.base  # noqa: F401  (sets the naming convention before the table is declared)


class Secret(SQLModel, table=True):
    """A stored secret. Nothing here opens without the secret key, which is never stored.

    - `lookup_hash` is SHA-256 of the secret key: it finds the row but cannot be reversed.
    - `ciphertext` is nonce + AES-256-GCM(secret) under a key derived from the secret key and
      the passphrase's key material, which is never stored (`api.domain.crypto`); rows from
      before that format are sealed under the secret key alone.
    - `passphrase_hash` is the argon2id verifier record, `$ots2$m=…,t=…,p=…$<salt>$<verifier>`,
      or for those older rows passlib's `$argon2id$` PHC string (`api.domain.hashing`).
    """

    __tablename__ = "secrets"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    lookup_hash: bytes = Field(
        sa_column=Column(LargeBinary(32), nullable=False, unique=True, index=False)
    )
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    passphrase_hash: str = Field(sa_column=Column(String(255), nullable=False))
    failed_attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    # The sender's receipt; none for secrets stored before receipts existed.
    receipt_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, nullable=True, index=True)
    )
