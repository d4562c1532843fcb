"""One delivery attempt: POST the signed body, and say how it went and whether to retry.

httpcore (httpx's own engine) sends it through `GuardedBackend`, with no redirects (httpcore
follows none: a 3xx is a failed attempt, so a receiver cannot point us elsewhere), short
timeouts, and at most a few KB of the answer read, then dropped.

Retries: every failure is worth another try within the retry window (a receiver mid-deploy
answers 404, 401 or 502 for a minute, and each secret sends one event, so a retry is cheap),
except a refusal by the destination policy, which no retry changes, and 410 Gone, the
receiver's own word that it wants no more.
"""

import asyncio
import ssl
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import httpcore
import httpx

from api.webhooks.network import (
    DestinationRefused,
    GuardedBackend,
    NameNotResolved,
    Resolver,
    system_resolver,
)
from api.webhooks.policy import DestinationPolicy, check_url

USER_AGENT = "onetime-secrets-webhooks/1"
RESPONSE_BYTES_READ = 4096
# Receivers close idle connections after a few seconds; one idle longer is not reused.
KEEPALIVE_SECONDS = 5.0
_HTTP_GONE = 410
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
    pool: float = 5.0
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


def _request_headers(url: httpx.URL, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    given = {name.lower(): value for name, value in headers.items()}
    reserved = _RESERVED_HEADERS.intersection(given)
    if reserved:
        raise ValueError(f"headers set by the sender: {', '.join(sorted(reserved))}")
    merged = {
        # netloc keeps IPv6 brackets and a port that is not the scheme's default.
        "host": url.netloc.decode("ascii"),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **given,
    }
    return [(name.encode("ascii"), value.encode("ascii")) for name, value in merged.items()]


async def _read_a_little(response: httpcore.Response) -> None:
    chunks = response.aiter_stream()
    try:
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if received >= RESPONSE_BYTES_READ:
                break
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


def _from_tls(error: httpcore.ConnectError) -> bool:
    # httpcore wraps the ssl error as its argument; the pool re-raises with `from None`.
    causes = [*error.args, error.__cause__, error.__context__]
    return any(isinstance(cause, ssl.SSLError) for cause in causes)


class WebhookSender:
    """Delivers webhooks under one destination policy, over one pool of connections.

    Use it as an async context manager (or call `aclose`). `resolver` and `network_backend`
    replace name resolution and the sockets underneath, for tests; `ssl_context` replaces
    the trusted certificates (certifi's by default).
    """

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        timeouts: DeliveryTimeouts | None = None,
        resolver: Resolver = system_resolver,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 10,
    ) -> None:
        self._policy = policy
        self._timeouts = timeouts if timeouts is not None else DeliveryTimeouts()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            keepalive_expiry=KEEPALIVE_SECONDS,
            http1=True,
            http2=False,
            retries=0,
            network_backend=GuardedBackend(
                allow_private=policy.allow_private, resolver=resolver, backend=network_backend
            ),
        )

    async def __aenter__(self) -> "WebhookSender":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._pool.aclose()

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
        target = httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        )
        timeouts = self._timeouts
        extensions = {
            "timeout": {
                "connect": timeouts.connect,
                "read": timeouts.read,
                "write": timeouts.write,
                "pool": timeouts.pool,
            }
        }
        try:
            async with asyncio.timeout(timeouts.total):
                async with self._pool.stream(
                    "POST",
                    target,
                    headers=_request_headers(parsed, headers),
                    content=body,
                    extensions=extensions,
                ) as response:
                    await _read_a_little(response)
                    return _answered(response.status)
        except DestinationRefused as refused:
            return _refused(refused.reason)
        except (TimeoutError, httpcore.TimeoutException):
            return _failed("timeout")
        except NameNotResolved:
            return _failed("name not resolved")
        except httpcore.ConnectError as error:
            if _from_tls(error):
                return _failed("tls error")
            return _failed("connection error")
        except (httpcore.NetworkError, httpcore.ProtocolError):
            return _failed("connection error")


async def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: DestinationPolicy,
    timeouts: DeliveryTimeouts | None = None,
) -> DeliveryOutcome:
    """Deliver one webhook over a connection of its own (`WebhookSender` keeps a pool)."""
    async with WebhookSender(policy, timeouts=timeouts) as sender:
        return await sender.deliver(url, body=body, headers=headers)
