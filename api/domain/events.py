"""Domain events the service layer reports; the metrics module counts them.

The service calls these plain functions so it stays free of any metrics library.
"""

from collections.abc import Callable

Listener = Callable[[str, int, str | None], None]
_listeners: list[Listener] = []

CREATED = "created"
REVEALED = "revealed"
BURNED = "burned"
REVOKED = "revoked"
PURGED = "purged"
FAILED_ATTEMPT = "failed_attempt"
DESTROYED_BY_ATTEMPT_LIMIT = "destroyed_by_attempt_limit"
REFUSED_AT_CAPACITY = "refused_at_capacity"
REFUSED_STORAGE_QUOTA = "refused_storage_quota"
REFUSED_UNAUTHENTICATED = "refused_unauthenticated"
# A closing write queued a notification (wakes the notifier); how its attempts went.
NOTIFICATION_QUEUED = "notification_queued"
NOTIFICATION_DELIVERED = "notification_delivered"
NOTIFICATION_RETRIED = "notification_retried"
NOTIFICATION_FAILED = "notification_failed"
# Labelled with the creator token's name: operator-chosen, so the label set stays bounded.
CREATED_WITH_TOKEN = "created_with_token"  # noqa: S105  (an event name)


def subscribe(listener: Listener) -> None:
    """Call `listener(event, count, label)` for every domain event from now on."""
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    """Stop calling `listener`."""
    if listener in _listeners:
        _listeners.remove(listener)


def emit(event: str, count: int = 1, *, label: str | None = None) -> None:
    """Report that `event` happened `count` times (to the thing named `label`, if any)."""
    for listener in _listeners:
        listener(event, count, label)
