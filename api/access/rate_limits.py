"""Per-client rate limits: the buckets, the limiter and its storage, and REST's dependency.

Three buckets: `create` (`RATE_LIMIT_CREATE`), `reveal` (`RATE_LIMIT_REVEAL`, spent by
reveals and burns alike, since both check a passphrase) and `receipt` (`RATE_LIMIT_RECEIPT`,
spent by reading and revoking through a receipt). A REST route spends one hit in a
dependency (`limit(bucket)`, or `CreatorDep` when it creates: `api.access.authentication`), the
GraphQL door a document's hits before any field runs (`api.gql.rate_limits`).

Counts use `limits`' sliding window counter (two counters per key, the previous window
weighted) in `RATE_LIMIT_STORAGE_URL`: `memory://` counts per process, `redis://…` shares
one count between processes and machines. If Redis fails, requests are not refused for it:
counting falls back to this process's memory (so each process still applies the limits on
its own), a warning says the limits became local, the gauge `onetime_secrets_rate_limits_local`
reads 1 until Redis answers again, and Redis is tried again after `STORAGE_RETRY_SECONDS`.
Keys hold the bucket and the client's address, nothing else. In token mode
(CREATE_AUTH=token) the `create` bucket is counted per creator token instead, under the
token's id (never the token): its own `--rate`, else `RATE_LIMIT_CREATE_PER_TOKEN`. Who the
creator is, is authentication's business (`api.access.authentication`).
"""

import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import redis.asyncio
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from prometheus_client import Gauge
from starlette import status
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from api.access.client_address import limit_key, parse_networks, resolve_client
from api.domain.creators import Creator
from api.settings import Settings

logger = logging.getLogger(__name__)

TOO_MANY_REQUESTS = "Too many requests: retry after the number of seconds in Retry-After"
STORAGE_RETRY_SECONDS = 5.0


@lru_cache(maxsize=1)
def rate_limits_local() -> Gauge:
    """Return the gauge that reads 1 while rate limits are counted in process memory."""
    # Made with the first limiter, not at import: by then api.telemetry.metrics has created
    # PROMETHEUS_MULTIPROC_DIR, where a multi-process gauge keeps its file. There it reports
    # the highest value of the live processes, so any one process counting locally shows.
    return Gauge(
        "onetime_secrets_rate_limits_local",
        "1 while rate limits are counted in process memory because RATE_LIMIT_STORAGE_URL "
        "fails (each process then allows the full limit), else 0.",
        multiprocess_mode="livemax",
    )


class Bucket(enum.StrEnum):
    """What a request spends: creating a secret, a passphrase check, or a receipt look-up."""

    CREATE = "create"
    REVEAL = "reveal"
    RECEIPT = "receipt"


@lru_cache(maxsize=32)
def parse_limits(text: str) -> tuple[RateLimitItem, ...]:
    """Parse `60/minute` (or several, `5/second;60/minute`) into limit items."""
    return tuple(parse_many(text))


def _limits_for(bucket: Bucket, settings: Settings) -> tuple[RateLimitItem, ...]:
    texts = {
        Bucket.CREATE: settings.rate_limit_create,
        Bucket.REVEAL: settings.rate_limit_reveal,
        Bucket.RECEIPT: settings.rate_limit_receipt,
    }
    return parse_limits(texts[bucket])


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may proceed and, if not, how many seconds until it could."""

    allowed: bool
    retry_after: int = 0


@dataclass(slots=True)
class _Store:
    strategy: SlidingWindowCounterRateLimiter
    failing: bool = False
    retry_at: float = 0.0


class Clock(Protocol):
    """Where the limiter reads the time: the `time` module, or a clock a test controls."""

    def time(self) -> float:
        """Seconds since the epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""


class RateLimiter:
    """Counts hits per bucket and client in the storage and under the limits of `settings`.

    `clock` tells when a failing storage is asked again and how far away a window's reset
    is. (`limits` reads `time.time()` itself; a test that stops the clock stops it there too.)
    """

    def __init__(self, settings: Settings, *, clock: Clock = time) -> None:
        self.settings = settings
        self._clock = clock
        self._stores: dict[str, _Store] = {}
        self._pools: list[redis.asyncio.ConnectionPool] = []
        self._fallback = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._local = rate_limits_local()

    def _store(self, url: str) -> _Store:
        if url not in self._stores:
            storage: Storage
            if url.startswith("memory://"):
                storage = MemoryStorage()
            else:
                timeout = self.settings.rate_limit_storage_timeout_seconds
                pool = redis.asyncio.ConnectionPool.from_url(
                    url, socket_timeout=timeout, socket_connect_timeout=timeout
                )
                self._pools.append(pool)
                storage = RedisStorage(
                    f"async+{url}",
                    implementation="redispy",
                    wrap_exceptions=True,
                    connection_pool=pool,  # type: ignore[arg-type]
                )
            self._stores[url] = _Store(SlidingWindowCounterRateLimiter(storage))
        return self._stores[url]

    async def hit(
        self, costs: Mapping[Bucket, int], client: str, creator: Creator | None = None
    ) -> Verdict:
        """Spend `costs` for `client`; refuse at the first bucket that has too few left.

        Creates are counted for `creator` instead, if one is given (token mode).
        """
        settings = self.settings
        store = self._store(settings.rate_limit_storage_url)
        subjects = {bucket: _subject(bucket, client, creator, settings) for bucket in costs}
        if store.failing and self._clock.monotonic() < store.retry_at:
            return await _spend(self._fallback, costs, subjects, settings, self._clock)
        try:
            verdict = await _spend(store.strategy, costs, subjects, settings, self._clock)
        except StorageError as error:
            if not store.failing:
                logger.warning(
                    "rate-limit storage failed (%s): rate limits are now local, each process "
                    "counts on its own until the storage answers",
                    type(error.storage_error).__name__,
                )
                self._local.set(1)
            store.failing = True
            store.retry_at = self._clock.monotonic() + STORAGE_RETRY_SECONDS
            return await _spend(self._fallback, costs, subjects, settings, self._clock)
        if store.failing:
            logger.info("rate-limit storage answers again; counts are shared once more")
            self._local.set(0)
            store.failing = False
        return verdict

    async def aclose(self) -> None:
        """Close the Redis connections; the limiter reconnects if used again."""
        pools, self._pools = self._pools, []
        self._stores.clear()
        for pool in pools:
            await pool.aclose()


def _subject(
    bucket: Bucket, client: str, creator: Creator | None, settings: Settings
) -> tuple[str, tuple[RateLimitItem, ...]]:
    """Whom a bucket's hits are counted for, and under which limits."""
    if bucket is Bucket.CREATE and creator is not None:
        limit = creator.rate_limit or settings.rate_limit_create_per_token
        return f"token:{creator.id}", parse_limits(limit)
    return client, _limits_for(bucket, settings)


async def _spend(
    strategy: SlidingWindowCounterRateLimiter,
    costs: Mapping[Bucket, int],
    subjects: Mapping[Bucket, tuple[str, tuple[RateLimitItem, ...]]],
    settings: Settings,
    clock: Clock,
) -> Verdict:
    for bucket, cost in costs.items():
        subject, items = subjects[bucket]
        for item in items:
            identifiers = (settings.rate_limit_key_prefix, bucket.value, subject)
            if await strategy.hit(item, *identifiers, cost=cost):
                continue
            if cost > item.amount:
                return Verdict(allowed=False, retry_after=item.get_expiry())
            stats = await strategy.get_window_stats(item, *identifiers)
            return Verdict(
                allowed=False, retry_after=max(1, math.ceil(stats.reset_time - clock.time()))
            )
    return Verdict(allowed=True)


def client_of(connection: HTTPConnection, settings: Settings) -> str:
    """Return the key this request's client is counted under (behind `TRUSTED_PROXIES`)."""
    trusted = parse_networks(tuple(settings.trusted_proxies))
    peer = connection.client.host if connection.client else None
    # Without trusted proxies the header is never believed, so it is not even read.
    forwarded_for = connection.headers.getlist("x-forwarded-for") if trusted else ()
    return limit_key(resolve_client(peer, forwarded_for, trusted))


async def check(
    connection: HTTPConnection, costs: Mapping[Bucket, int], creator: Creator | None = None
) -> Verdict:
    """Spend `costs` for the client of `connection` (creates for `creator`, if given)."""
    limiter: RateLimiter = connection.app.state.rate_limiter
    return await limiter.hit(costs, client_of(connection, limiter.settings), creator)


def refuse_over_limit(verdict: Verdict) -> None:
    """Raise the 429, with `Retry-After`, of a verdict that refuses; GraphQL has its own."""
    if not verdict.allowed:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=TOO_MANY_REQUESTS,
            headers={"Retry-After": str(verdict.retry_after)},
        )


def limit(bucket: Bucket) -> Callable[[Request], Awaitable[None]]:
    """Return a FastAPI dependency that spends one hit of `bucket` or answers 429."""

    async def dependency(request: Request) -> None:
        refuse_over_limit(await check(request, {bucket: 1}))

    return dependency
