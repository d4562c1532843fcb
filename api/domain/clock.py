"""The service's one notion of time: UTC now, and the one way a timestamp is written."""

from datetime import UTC, datetime


def now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def format_timestamp(value: datetime) -> str:
    """Write `value` as RFC 3339 in UTC with a `Z`, to the second: `2026-12-08T13:00:51Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime (SQLite hands timestamps back naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
