"""A creator token: what an operator hands out when creating secrets needs one."""

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, Integer, LargeBinary, String
from sqlmodel import Field, SQLModel

import models.base  # noqa: F401  (sets the naming convention before the table is declared)


class CreatorToken(SQLModel, table=True):
    """A token found by SHA-256 of its value; the value itself is never stored.

    `name` is the operator's label for it (and the only thing metrics and the admin command
    show); `rate_limit` overrides RATE_LIMIT_CREATE_PER_TOKEN for this token. A revoked
    token stays listed, with `revoked_at`, and its name is not reused.
    `signing_generation` picks the token's notification signing secret, which is derived,
    never stored (`api.domain.notifications`); rotating it counts up.
    """

    __tablename__ = "creator_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    token_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    rate_limit: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    signing_generation: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
