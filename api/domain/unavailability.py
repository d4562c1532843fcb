"""A database that does not answer, or hashing at capacity, is `ServiceUnavailable`."""

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from api.domain import events
from api.domain.admission import Busy
from api.domain.errors import ServiceUnavailable
from api.storage.database import DatabaseUnavailable

# How long a client is told to wait when the database does not answer.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5
# ... and when the hashing queue is full: a slot frees up within tens of milliseconds.
BUSY_RETRY_AFTER_SECONDS = 1

_P = ParamSpec("_P")
_R = TypeVar("_R")


def unavailable_when_the_database_fails(
    function: Callable[_P, Awaitable[_R]],
) -> Callable[_P, Awaitable[_R]]:
    """Turn `DatabaseUnavailable` and `Busy` raised by `function` into `ServiceUnavailable`."""

    @functools.wraps(function)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await function(*args, **kwargs)
        except DatabaseUnavailable:
            raise ServiceUnavailable(UNAVAILABLE_RETRY_AFTER_SECONDS) from None
        except Busy:
            events.emit(events.REFUSED_AT_CAPACITY)
            raise ServiceUnavailable(
                BUSY_RETRY_AFTER_SECONDS, ServiceUnavailable.AT_CAPACITY
            ) from None

    return wrapper
