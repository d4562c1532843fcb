"""A database that does not answer is the domain's `ServiceUnavailable`, said one way."""

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from api.domain.errors import ServiceUnavailable
from api.storage.database import DatabaseUnavailable

# How long a client is told to wait when the database does not answer.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5

_P = ParamSpec("_P")
_R = TypeVar("_R")


def unavailable_when_the_database_fails(
    function: Callable[_P, Awaitable[_R]],
) -> Callable[_P, Awaitable[_R]]:
    """Turn `DatabaseUnavailable` raised by `function` into `ServiceUnavailable`."""

    @functools.wraps(function)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await function(*args, **kwargs)
        except DatabaseUnavailable:
            raise ServiceUnavailable(UNAVAILABLE_RETRY_AFTER_SECONDS) from None

    return wrapper
