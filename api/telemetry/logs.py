"""Logging: `LOG_FORMAT` (text or JSON lines), `LOG_LEVEL`, request ids and the access log.

Every request gets an id (a safe incoming `X-Request-ID`, or a new UUID), returned in the
`X-Request-ID` header and attached to each line logged while it runs. The service writes its
own access line (logger `api.access`) with the route template in place of the path; uvicorn's
access logger, which prints raw paths and query strings, is switched off when uvicorn set it up.
"""

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.settings import Settings

REQUEST_ID_HEADER = b"x-request-id"
UNMATCHED = "unmatched"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The fields a record may carry beyond its message; anything else passed as `extra` is dropped.
CONTEXT_FIELDS = ("request_id", "method", "route", "status", "duration_ms")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("api.access")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served (`-` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add `record.request_id` unless the record already has one; never drop it."""
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record's time, level, logger, message and context fields as JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None and value != "-":
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# C0 and C1 control characters but the newline, which tracebacks need.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


class TextFormatter(logging.Formatter):
    """The text format, with control characters escaped: no terminal escape, no forged line."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, then escape what a terminal or a log parser would act on."""
        text = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", super().format(record))
        if record.exc_info or record.stack_info:
            return text
        return text.replace("\n", "\\n")


class WebSocketHandshakeFilter(logging.Filter):
    """Drops uvicorn's line about each WebSocket handshake: it holds the raw path and query.

    The service refuses every upgrade (`api.http.websocket`) and logs it itself, by route.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but a handshake line."""
        return not (isinstance(record.msg, str) and '"WebSocket %s"' in record.msg)


class ServiceLogHandler(logging.StreamHandler[TextIO]):
    """The root handler this service installs; writes to whatever `sys.stderr` is now."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record to the current standard error (test runners swap it)."""
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(settings: Settings) -> None:
    """Send all logs through one handler in the configured format and level.

    Idempotent, and leaves other handlers on the root logger (such as pytest's) in place.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ServiceLogHandler)]:
        root.removeHandler(handler)
    handler = ServiceLogHandler()
    handler.setLevel(settings.log_level)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # aiosqlite logs every statement with its parameters at DEBUG, passphrase hashes included.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))

    # uvicorn's own lines go through the same handler, in the same format.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, WebSocketHandshakeFilter) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(WebSocketHandshakeFilter())
    # Replaced by `api.access`: uvicorn's line holds the raw path and query string. With no
    # handler anywhere up its chain, uvicorn skips the line entirely.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False


def route_template(scope: Scope) -> str:
    """Return the template of the route that handled `scope` (`/secrets/{secret_key}`).

    Routing records the matched route in the scope; a request that matched none, or a
    mount's sub-path, gets a fixed label rather than anything taken from its raw path,
    which may hold a secret key.
    """
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            return candidate if _SAFE_REQUEST_ID.fullmatch(candidate) else None
    return None


RequestObserver = Callable[[str, str, int, float], None]
"""Told of every answered request: method, route template, status and seconds taken."""


class RequestLogMiddleware:
    """A pure ASGI middleware: a request id for every request and one access line after it.

    It measures each request once and tells `observers` (the metrics) the same figures.
    """

    def __init__(self, app: ASGIApp, observers: Sequence[RequestObserver] = ()) -> None:
        self.app = app
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with its id set, answer with `X-Request-ID`, then log the access."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or str(uuid.uuid4())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        # Every failure of the application is answered (a 500); a request that ends with no
        # answer at all was cancelled because its client left: nginx's 499.
        status = 499

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != REQUEST_ID_HEADER]
                message["headers"] = [*headers, (REQUEST_ID_HEADER, request_id.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            seconds = time.perf_counter() - started
            duration_ms = round(seconds * 1000, 2)
            route = route_template(scope)
            for observe in self.observers:
                observe(scope["method"], route, status, seconds)
            access_logger.info(
                "%s %s %d %.2fms",
                scope["method"],
                route,
                status,
                duration_ms,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )
            request_id_var.reset(token)
