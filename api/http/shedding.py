"""Refusing at capacity before a request costs anything: no routing, no body, no validation.

Past capacity most requests are refused, and a refusal that went through FastAPI (routing,
the rate-limit check, reading and validating the body, the exception handlers) cost the
workers about as much CPU as the cycles they were still completing. Measured at 32x the
saturating connections (BENCHMARKS.md, default argon2): goodput 0.77 of saturation with
refusals made in the service, 0.89 with this middleware inside the request log, 0.92 outside
it. So for the REST routes that hash, this middleware asks the admission gate first and
answers the `503` itself when the request would be refused anyway; the service still decides
for everything that gets past.
The routes are named by their endpoints (`shed_routes`) and matched by their own path
templates, so a route keeps its shedding whatever its path becomes. GraphQL documents are
refused by the service: which mutation they run is known only after parsing them.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.domain.errors import ServiceUnavailable
from api.domain.events import REFUSED_AT_CAPACITY, emit
from api.domain.hashing import PassphraseHasher
from api.domain.unavailability import BUSY_RETRY_AFTER_SECONDS
from api.http.refusals import ErrorShapes


@dataclass(frozen=True, slots=True)
class ShedRoute:
    """A route that hashes: its methods, its path pattern, and its share of the gate's bound."""

    methods: frozenset[str]
    path: re.Pattern[str]
    share: float


def shed_routes(
    routes: Iterable[BaseRoute], shares: Mapping[Callable[..., Any], float]
) -> tuple[ShedRoute, ...]:
    """Return the routes among `routes` whose endpoint is a key of `shares`, with its share.

    Raises `LookupError` if an endpoint of `shares` is not among `routes`.
    """
    matched = [route for route in routes if isinstance(route, Route) and route.endpoint in shares]
    missing = set(shares) - {route.endpoint for route in matched}
    if missing:
        raise LookupError(f"no route for {', '.join(map(repr, missing))}")
    return tuple(
        ShedRoute(frozenset(route.methods or ()), route.path_regex, shares[route.endpoint])
        for route in matched
    )


class ShedAtCapacityMiddleware:
    """Answers `503` at once to a request of `routes` that the admission gate would refuse.

    The gate is that of the application's hasher (`app.state.hasher`, built by the lifespan).
    """

    def __init__(self, app: ASGIApp, shapes: ErrorShapes, routes: Iterable[ShedRoute]) -> None:
        self.app = app
        self.shapes = shapes
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse early if the gate would; otherwise pass the request on."""
        if scope["type"] == "http":
            share = self._share(scope["method"], scope["path"])
            if share is not None and _hasher(scope).gate.would_refuse(share):
                emit(REFUSED_AT_CAPACITY)
                response = self.shapes.for_scope(scope)(
                    503,
                    ServiceUnavailable.AT_CAPACITY,
                    {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _share(self, method: str, path: str) -> float | None:
        for route in self.routes:
            if method in route.methods and route.path.match(path):
                return route.share
        return None


def _hasher(scope: Scope) -> PassphraseHasher:
    hasher: PassphraseHasher = scope["app"].state.hasher
    return hasher
