"""One delivery attempt: POST the signed body, and say how it went and whether to retry.

HTTP/1.1 framing is h11's (the protocol engine under httpx); the connection is ours: opened
by `connect_checked` to a checked address, kept alive for the next notification to the same
receiver, and closed after any answer not read to its end. No redirect is followed (a 3xx is
a failed attempt, so a receiver cannot point us elsewhere), every step has a short timeout,
and at most a few KB of the answer are read, then dropped. httpcore's pool did this before,
for about four times the CPU per delivery (`scripts/bench`, *Webhook delivery*), in the
processes that serve reveals.

Retries: every failure is worth another try within the retry window (a receiver mid-deploy
answers 404, 401 or 502 for a minute, and each secret sends one event, so a retry is cheap),
except a refusal by the destination policy, which no retry changes, and 410 Gone, the
receiver's own word that it wants no more.
"""

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import certifi
import h11
import httpx

from api.webhooks.network import (
    DestinationRefused,
    Dialler,
    NameNotResolved,
    Resolver,
    connect_checked,
    open_streams,
    system_resolver,
)
from api.webhooks.policy import DestinationPolicy, check_url

USER_AGENT = "onetime-secrets-webhooks/1"
RESPONSE_BYTES_READ = 4096
# Receivers close idle connections after a few seconds; one idle longer is not reused.
KEEPALIVE_SECONDS = 5.0
# Idle connections kept for reuse, per sender: one per notification of a batch is plenty.
MAX_IDLE_CONNECTIONS = 20
# An answer's status line and headers, at most: more is a receiver misbehaving.
MAX_HEAD_BYTES = 16 * 1024
_HTTP_GONE = 410
_DEFAULT_PORTS = {"http": 80, "https": 443}
# The request's own framing and routing are ours to set, not the caller's.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True, slots=True)
class DeliveryTimeouts:
    """Seconds allowed for each step of an attempt, and for the whole of it.

    `total` bounds a receiver that drips its answer a byte at a time, each byte within
    `read`.
    """

    connect: float = 3.0
    read: float = 5.0
    write: float = 5.0
    total: float = 15.0


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """How one attempt went: `reason` is short and safe to log (it never holds the URL)."""

    delivered: bool
    reason: str
    retry: bool
    status_code: int | None = None


def _answered(status: int) -> DeliveryOutcome:
    if 200 <= status < 300:
        return DeliveryOutcome(
            delivered=True, reason=f"status {status}", retry=False, status_code=status
        )
    return DeliveryOutcome(
        delivered=False, reason=f"status {status}", retry=status != _HTTP_GONE, status_code=status
    )


def _refused(reason: str) -> DeliveryOutcome:
    return DeliveryOutcome(delivered=False, reason=f"refused: {reason}", retry=False)


def _failed(reason: str) -> DeliveryOutcome:
    return DeliveryOutcome(delivered=False, reason=reason, retry=True)


def _request_headers(
    url: httpx.URL, headers: Mapping[str, str], length: int
) -> list[tuple[str, str]]:
    given = {name.lower(): value for name, value in headers.items()}
    reserved = _RESERVED_HEADERS.intersection(given)
    if reserved:
        raise ValueError(f"headers set by the sender: {', '.join(sorted(reserved))}")
    merged = {
        # netloc keeps IPv6 brackets and a port that is not the scheme's default.
        "host": url.netloc.decode("ascii"),
        "content-type": "application/json",
        "content-length": str(length),
        "user-agent": USER_AGENT,
        **given,
    }
    return list(merged.items())


def default_tls() -> ssl.SSLContext:
    """Certificates checked against certifi's roots, as httpx does."""
    return ssl.create_default_context(cafile=certifi.where())


@dataclass(eq=False, slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


class _Unanswered(ConnectionError):
    """The line closed before any answer: a kept-alive one the receiver had closed idle."""


async def _exchange(
    connection: _Connection, request: h11.Request, body: bytes, timeouts: DeliveryTimeouts
) -> tuple[int, bool]:
    """Send `request` with `body`; return the answer's status and whether to keep the line."""
    protocol, reader = connection.protocol, connection.reader
    # One write, so the request leaves in one segment rather than one per part.
    events = (request, h11.Data(data=body), h11.EndOfMessage())
    status: int | None = None
    read = 0
    try:
        connection.writer.write(b"".join(protocol.send(event) or b"" for event in events))
        async with asyncio.timeout(timeouts.write):
            await connection.writer.drain()
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(timeouts.read):
                    protocol.receive_data(await reader.read(RESPONSE_BYTES_READ))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                read += len(event.data)
                if status is not None and read >= RESPONSE_BYTES_READ:
                    return status, False  # the rest is not worth reading: hang up instead
            elif isinstance(event, h11.EndOfMessage) and status is not None:
                # Reusable only if both sides are done and neither asked to close.
                reusable = protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
                if reusable:
                    protocol.start_next_cycle()
                return status, reusable
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("closed before answering")
            # An informational (1xx) answer says nothing yet: read on.
    except (ConnectionError, h11.RemoteProtocolError) as error:
        if status is None and read == 0:
            raise _Unanswered("closed before answering") from error
        raise


class WebhookSender:
    """Delivers webhooks under one destination policy, keeping connections for reuse.

    Use it as an async context manager (or call `aclose`). `resolver` and `dial` replace
    name resolution and connecting, for tests; `ssl_context` replaces the trusted
    certificates (certifi's by default).
    """

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        timeouts: DeliveryTimeouts | None = None,
        resolver: Resolver = system_resolver,
        dial: Dialler = open_streams,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._timeouts = timeouts if timeouts is not None else DeliveryTimeouts()
        self._resolver = resolver
        self._dial = dial
        self._tls = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    async def __aenter__(self) -> "WebhookSender":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every idle connection."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def deliver(
        self, url: str, *, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryOutcome:
        """POST `body` to `url`, with `headers` (the signature's) added to ours.

        It never raises for what the network or the receiver does: the outcome says.
        """
        refusal = check_url(url, self._policy)
        if refusal is not None:
            return _refused(refusal)
        parsed = httpx.URL(url)
        request = h11.Request(
            method="POST",
            target=parsed.raw_path,
            headers=_request_headers(parsed, headers, len(body)),
        )
        host = parsed.raw_host.decode("ascii")  # IDNA-encoded: what DNS and SNI take
        origin = (parsed.scheme, host, parsed.port or _DEFAULT_PORTS[parsed.scheme])
        try:
            async with asyncio.timeout(self._timeouts.total):
                return _answered(await self._post(origin, request, body))
        except DestinationRefused as refused:
            return _refused(refused.reason)
        except TimeoutError:
            return _failed("timeout")
        except NameNotResolved:
            return _failed("name not resolved")
        except ssl.SSLError:
            return _failed("tls error")
        except (OSError, h11.ProtocolError):
            return _failed("connection error")

    async def _post(self, origin: tuple[str, str, int], request: h11.Request, body: bytes) -> int:
        kept = self._reusable(origin)
        if kept is not None:
            try:
                return await self._over(kept, origin, request, body)
            except _Unanswered:
                pass  # closed while idle, as receivers do: a new line gets the same request
        return await self._over(await self._connect(origin), origin, request, body)

    async def _over(
        self,
        connection: _Connection,
        origin: tuple[str, str, int],
        request: h11.Request,
        body: bytes,
    ) -> int:
        keep = False
        try:
            status, keep = await _exchange(connection, request, body, self._timeouts)
            return status
        finally:
            if keep:
                self._keep(origin, connection)
            else:
                connection.close()

    def _reusable(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin, [])
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            # A receiver that closed the line, or sent anything unasked, has ended it.
            fresh = now - connection.idle_since < KEEPALIVE_SECONDS
            if fresh and not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    def _keep(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        if sum(len(connections) for connections in self._idle.values()) >= MAX_IDLE_CONNECTIONS:
            connection.close()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(origin, []).append(connection)

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = default_tls()
            tls = self._tls
        async with asyncio.timeout(self._timeouts.connect):
            reader, writer = await connect_checked(
                host,
                port,
                tls=tls,
                allow_private=self._policy.allow_private,
                resolver=self._resolver,
                dial=self._dial,
            )
        protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        return _Connection(reader, writer, protocol)


async def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: DestinationPolicy,
    timeouts: DeliveryTimeouts | None = None,
) -> DeliveryOutcome:
    """Deliver one webhook over a connection of its own (`WebhookSender` keeps them)."""
    async with WebhookSender(policy, timeouts=timeouts) as sender:
        return await sender.deliver(url, body=body, headers=headers)
