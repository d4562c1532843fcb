"""The notifications outbox: one row per receipt whose sender asked to be told.

The row is written in the transaction that closes the receipt, so a notification exists
exactly when its receipt left `pending`, whatever crashes afterwards. A sender claims due
rows (`next_attempt_at` is also its lease), delivers them and records the outcome; the row
stays, `delivered` or `failed`, until the purge removes it with its receipt. It holds no
URL, key or payload of its own: those are read from the receipt when it is sent.
"""

import enum
import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Integer, String, Uuid
from sqlmodel import Field, SQLModel

import models.base  # noqa: F401  (sets the naming convention before the table is declared)


class StoredNotificationState(enum.StrEnum):
    """The values stored in `notifications.state`."""

    PENDING = "pending"  # not delivered yet: due at `next_attempt_at`
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # refused for good, or still failing when the retry window closed


class Notification(SQLModel, table=True):
    """A receipt's notification and its delivery so far."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_state_next_attempt_at", "state", "next_attempt_at"),)

    receipt_id: uuid.UUID = Field(sa_column=Column(Uuid, primary_key=True))
    state: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # When the receipt closed: the retry window (WEBHOOK_RETRY_HOURS) counts from here.
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Why the last attempt failed, in a few safe words ("HTTP 503", "timeout"); never a URL.
    last_error: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
