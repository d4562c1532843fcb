"""Refusing at capacity before a request costs anything: no routing, no body, no validation.

Past capacity most requests are refused, and a refusal that went through FastAPI (routing,
the rate-limit check, reading and validating the body, the exception handlers) cost the
workers about as much CPU as the cycles they were still completing. Measured at 32x the
saturating connections (BENCHMARKS.md, default argon2): goodput 0.77 of saturation with
refusals made in the service, 0.89 with this middleware inside the request log, 0.92 outside
it. So for the REST routes that hash, this middleware asks the admission gate first and
answers the `503` itself when the request would be refused anyway; the service still decides
for everything that gets past.
GraphQL documents are refused by the service: which mutation they run is known only after
parsing them.
"""

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from api.domain.availability import BUSY_RETRY_AFTER_SECONDS
from api.domain.errors import ServiceUnavailable
from api.domain.events import REFUSED_AT_CAPACITY, emit
from api.domain.hashing import get_hasher
from api.domain.service import CREATE_SHARE
from api.plumbing.errors import ErrorShapes
from api.plumbing.headers import SECURITY_HEADERS

Share = Callable[[str, str], float | None]


def hashing_share(method: str, path: str) -> float | None:
    """Return the admission share of a REST request that hashes, or None for any other."""
    if method == "POST" and path == "/generate":
        return CREATE_SHARE
    if method in ("GET", "POST", "DELETE") and path.startswith("/secrets/"):
        return 1.0  # the default share (api.domain.admission)
    return None


class ShedAtCapacityMiddleware:
    """Answers `503` at once to a hashing request that the admission gate would refuse."""

    def __init__(self, app: ASGIApp, shapes: ErrorShapes, share: Share = hashing_share) -> None:
        self.app = app
        self.shapes = shapes
        self.share = share

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse early if the gate would; otherwise pass the request on."""
        if scope["type"] == "http":
            share = self.share(scope["method"], scope["path"])
            if share is not None and get_hasher().gate.would_refuse(share):
                emit(REFUSED_AT_CAPACITY)
                # Outside the headers middleware: its headers are added here.
                headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
                headers["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
                response = self.shapes.for_scope(scope)(
                    503, ServiceUnavailable.AT_CAPACITY, headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
