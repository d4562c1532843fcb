"""Which methods a path answers, for `Allow` and for `HEAD`.

RFC 9110 expects `HEAD` wherever `GET` works, with the same status and headers and no body
(`api.http.head`). One route here is an exception: a `GET` that changes state (the
original API's reveal by query string). Answering `HEAD` there would mean revealing, or
claiming an attempt, just to learn the status, so such a route is marked with
`changes_state_on_get` and `HEAD` on it is `405`, its `Allow` naming `GET` but not `HEAD`.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
_STATE_CHANGING_GETS: set[Callable[..., Any]] = set()


def changes_state_on_get(endpoint: Endpoint) -> Endpoint:
    """Mark a `GET` endpoint that changes state: `HEAD` is refused there rather than run."""
    _STATE_CHANGING_GETS.add(endpoint)
    return endpoint


def route_for(scope: Scope, method: str) -> RouteContext | None:
    """Return the route that would handle `scope`'s path with `method`, if any.

    FastAPI keeps included routers whole; `iter_route_contexts` lists their routes in
    routing order, each matching as it does when a request is routed.
    """
    probe = {key: scope.get(key) for key in ("type", "path", "root_path", "app")}
    probe.update(method=method, headers=[], query_string=b"")
    for route in iter_route_contexts(scope["app"].router.routes):
        if route.matches(probe)[0] == Match.FULL:
            return route
    return None


def is_state_changing(route: RouteContext | None) -> bool:
    """Whether `route` is a `GET` marked with `changes_state_on_get`."""
    return route is not None and route.endpoint in _STATE_CHANGING_GETS


def allowed_methods(scope: Scope) -> str:
    """Return the `Allow` value for `scope`'s path: its methods, `HEAD` where `GET` is safe."""
    found = {method: route_for(scope, method) for method in METHODS if method != "HEAD"}
    get = found["GET"]
    found["HEAD"] = get if get is not None and not is_state_changing(get) else None
    return ", ".join(method for method in METHODS if found[method] is not None)
