"""Domain events the service layer reports; the metrics module counts them.

The service calls these plain functions so it stays free of any metrics library.
"""

from collections.abc import Callable

Listener = Callable[[str, int], None]
_listeners: list[Listener] = []

CREATED = "created"
REVEALED = "revealed"
BURNED = "burned"
REVOKED = "revoked"
PURGED = "purged"
FAILED_ATTEMPT = "failed_attempt"
DESTROYED_BY_ATTEMPT_LIMIT = "destroyed_by_attempt_limit"
REFUSED_AT_CAPACITY = "refused_at_capacity"


def subscribe(listener: Listener) -> None:
    """Call `listener(event, count)` for every domain event from now on."""
    if listener not in _listeners:
        _listeners.append(listener)


def emit(event: str, count: int = 1) -> None:
    """Report that `event` happened `count` times."""
    for listener in _listeners:
        listener(event, count)
