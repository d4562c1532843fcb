"""A small HTTP/1.1 client and the calls the fault tests make with it.

httpx spends milliseconds of CPU per request and its connection pool slows down with hundreds
of connections, so a burst of 200 requests from one process measured mostly the client.
This client opens one connection per request (`Connection: close`), costs next to nothing,
and reports resets and early closes exactly. Every call returns an `Outcome` instead of
raising, so a test can keep a ledger of what the client was told.
"""

import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

REVEAL_TRANSPORTS = ("rest-get", "rest-post", "graphql")
# Spelled out rather than imported from the service: it is the wire contract a client relies
# on, so renaming it in the code must fail these tests.
SERVICE_UNAVAILABLE_CODE = "SERVICE_UNAVAILABLE"

REVEAL_MUTATION = """
mutation Reveal($key: String!, $passphrase: String!) {
  revealSecret(secretKey: $key, passphrase: $passphrase) {
    __typename
    ... on RevealedSecret { secret }
  }
}
"""
CREATE_MUTATION = """
mutation Create($secret: String!, $passphrase: String!, $ttl: Int) {
  createSecret(secret: $secret, passphrase: $passphrase, ttlSeconds: $ttl) {
    __typename
    ... on CreatedSecret { secretKey }
  }
}
"""


class TransportFailure(Exception):
    """No complete HTTP response: refused, reset, closed early or timed out."""


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response."""

    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.text)


def _dechunk(data: bytes) -> bytes:
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            return body
        if len(data) < size + 2:
            raise TransportFailure("truncated chunked body")
        body += data[:size]
        data = data[size + 2 :]


def _parse(raw: bytes) -> Response:
    if not raw:
        raise TransportFailure("connection closed without a response")
    head, separator, rest = raw.partition(b"\r\n\r\n")
    if not separator:
        raise TransportFailure("truncated response head")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(rest)
    else:
        length = int(headers.get("content-length", len(rest)))
        if len(rest) < length:
            raise TransportFailure("truncated response body")
        body = rest[:length]
    return Response(int(status_line.split(" ", 2)[1]), headers, body.decode())


class HttpClient:
    """One-request-per-connection HTTP/1.1 client for `http://host:port` URLs."""

    def __init__(self, base_url: str, *, timeout: float = 30) -> None:
        parts = urlsplit(base_url)
        assert parts.hostname is not None
        assert parts.port is not None
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Response:
        """Send one request and read the whole response, or raise `TransportFailure`."""
        target = path + ("?" + urlencode(params) if params else "")
        body = b"" if json_body is None else json.dumps(json_body).encode()
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n"
            + ("Content-Type: application/json\r\n" if json_body is not None else "")
            + "\r\n"
        )
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(head.encode() + body)
                    await writer.drain()
                    raw = await reader.read()
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except (OSError, TimeoutError) as exc:
            raise TransportFailure(repr(exc)) from exc
        return _parse(raw)

    async def get(self, path: str, *, params: dict[str, str] | None = None) -> Response:
        """GET `path`."""
        return await self.request("GET", path, params=params)

    async def post(self, path: str, *, json: Any = None) -> Response:
        """POST `json` to `path`."""
        return await self.request("POST", path, json_body=json)


# Words that would show a stack trace or SQL leaking into a response body.
LEAK_MARKERS = ("Traceback", 'File "', "sqlalchemy", "asyncpg", "SELECT ", "UPDATE ", "DELETE ")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call told the client.

    `kind` is `ok` (created or revealed), `not_found`, `unavailable` (503 with `Retry-After`;
    over GraphQL, only `SERVICE_UNAVAILABLE` errors), `failed` (no HTTP answer at all) or
    `unexpected` (any other answer, a masked GraphQL error included).
    """

    kind: str
    status: int | None
    seconds: float
    value: str | None = None
    body: str = ""
    retry_after: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return asdict(self)


def _unavailable(response: Response, elapsed: float) -> Outcome | None:
    """The outcome of a 503 that tells the client when to retry, as both doors answer it."""
    retry_after = response.headers.get("retry-after")
    if response.status != 503 or retry_after is None:
        return None
    return Outcome("unavailable", 503, elapsed, body=response.text, retry_after=retry_after)


def _graphql_outcome(response: Response, field: str, value_key: str, started: float) -> Outcome:
    elapsed = time.monotonic() - started
    body = response.text
    try:
        document = response.json()
    except ValueError:
        return Outcome("unexpected", response.status, elapsed, body=body)
    result = (document.get("data") or {}).get(field)
    if response.status == 200 and result is not None:
        typename = result["__typename"]
        if typename in ("RevealedSecret", "CreatedSecret"):
            return Outcome("ok", 200, elapsed, result[value_key], body)
        if typename == "SecretNotFound":
            return Outcome("not_found", 200, elapsed, body=body)
    errors = document.get("errors") or []
    # A masked "Unexpected error." is a failure of the service, not an outage it reports.
    if errors and all(
        (error.get("extensions") or {}).get("code") == SERVICE_UNAVAILABLE_CODE for error in errors
    ):
        unavailable = _unavailable(response, elapsed)
        if unavailable is not None:
            return unavailable
    return Outcome("unexpected", response.status, elapsed, body=body)


def _rest_outcome(response: Response, value_key: str, started: float) -> Outcome:
    elapsed = time.monotonic() - started
    body = response.text
    if response.status == 200:
        return Outcome("ok", 200, elapsed, response.json()[value_key], body)
    if response.status == 404:
        return Outcome("not_found", 404, elapsed, body=body)
    return _unavailable(response, elapsed) or Outcome(
        "unexpected", response.status, elapsed, body=body
    )


async def reveal(http: HttpClient, transport: str, key: str, passphrase: str) -> Outcome:
    """Reveal `key` over `transport` (one of `REVEAL_TRANSPORTS`)."""
    started = time.monotonic()
    try:
        if transport == "rest-get":
            response = await http.get(f"/secrets/{key}", params={"passphrase": passphrase})
        elif transport == "rest-post":
            response = await http.post(f"/secrets/{key}", json={"passphrase": passphrase})
        else:
            variables = {"key": key, "passphrase": passphrase}
            response = await http.post(
                "/graphql", json={"query": REVEAL_MUTATION, "variables": variables}
            )
    except TransportFailure as exc:
        return Outcome("failed", None, time.monotonic() - started, body=repr(exc))
    if transport == "graphql":
        return _graphql_outcome(response, "revealSecret", "secret", started)
    return _rest_outcome(response, "secret", started)


async def create(
    http: HttpClient,
    secret: str,
    passphrase: str,
    *,
    graphql: bool = False,
    ttl_seconds: int | None = None,
) -> Outcome:
    """Create a secret; on success `Outcome.value` is its key."""
    started = time.monotonic()
    try:
        if graphql:
            variables = {"secret": secret, "passphrase": passphrase, "ttl": ttl_seconds}
            response = await http.post(
                "/graphql", json={"query": CREATE_MUTATION, "variables": variables}
            )
        else:
            body: dict[str, Any] = {"secret": secret, "passphrase": passphrase}
            if ttl_seconds is not None:
                body["ttl_seconds"] = ttl_seconds
            response = await http.post("/generate", json=body)
    except TransportFailure as exc:
        return Outcome("failed", None, time.monotonic() - started, body=repr(exc))
    if graphql:
        return _graphql_outcome(response, "createSecret", "secretKey", started)
    return _rest_outcome(response, "secret_key", started)


async def ready(http: HttpClient) -> Outcome:
    """Call `/readyz`."""
    started = time.monotonic()
    try:
        response = await http.get("/readyz")
    except TransportFailure as exc:
        return Outcome("failed", None, time.monotonic() - started, body=repr(exc))
    return _rest_outcome(response, "status", started)


def leaks(body: str) -> list[str]:
    """The stack-trace or SQL markers found in a response body."""
    return [marker for marker in LEAK_MARKERS if marker in body]


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` percentile of `values` (nearest rank), rounded to milliseconds."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return round(ordered[index], 3)


def latency_summary(outcomes: list[Outcome]) -> dict[str, float]:
    """Median, 95th percentile and maximum latency in seconds."""
    seconds = [outcome.seconds for outcome in outcomes]
    return {
        "p50_s": percentile(seconds, 0.5),
        "p95_s": percentile(seconds, 0.95),
        "max_s": round(max(seconds, default=0.0), 3),
    }
