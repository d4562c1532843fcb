"""Per-client rate limits on creating secrets and on checking passphrases.

Two buckets: `create` (`RATE_LIMIT_CREATE`) and `reveal` (`RATE_LIMIT_REVEAL`, spent by
reveals and burns alike, since both check a passphrase). REST routes take the `limit`
dependency; GraphQL mutations go through `GraphQLRateLimit`, which charges one hit per
mutation field of the document, aliases included, before any of them runs.

Counts use a sliding window counter (two counters per key, the previous window weighted: no
per-hit lists to trim, so no thread hand-off in memory and one small Redis call) in
`RATE_LIMIT_STORAGE_URL`: `memory://` counts per process (`api.local_limits`),
`redis://…` shares one count between processes and machines. If Redis fails, requests are
not refused for it: counting falls back to this process's memory (so each process still
applies the limits on its own), a warning is logged once, and Redis is tried again after
`STORAGE_RETRY_SECONDS`. Keys hold the bucket and the client's address, nothing else.
"""

import enum
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis.asyncio
from fastapi import HTTPException, Request, status
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
)
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from strawberry.extensions import SchemaExtension

from api.client_address import limit_key, parse_networks, resolve_client
from api.local_limits import LocalWindowStorage
from api.settings import Settings, get_settings

logger = logging.getLogger(__name__)

TOO_MANY_REQUESTS = "Too many requests: retry after the number of seconds in Retry-After"
STORAGE_TIMEOUT_SECONDS = 0.5
STORAGE_RETRY_SECONDS = 5.0


class Bucket(enum.StrEnum):
    """What a request spends: creating a secret, or one passphrase check."""

    CREATE = "create"
    REVEAL = "reveal"


GRAPHQL_BUCKETS: Mapping[str, Bucket] = {
    "createSecret": Bucket.CREATE,
    "revealSecret": Bucket.REVEAL,
    "burnSecret": Bucket.REVEAL,
}

RATE_LIMITED_RESPONSE: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "Too many requests from this client; retry after `Retry-After` seconds.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"detail": {"type": "string"}},
                    "required": ["detail"],
                },
                "example": {"detail": TOO_MANY_REQUESTS},
            }
        },
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before the next attempt can succeed.",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
}


@lru_cache(maxsize=32)
def parse_limits(text: str) -> tuple[RateLimitItem, ...]:
    """Parse `60/minute` (or several, `5/second;60/minute`) into limit items."""
    return tuple(parse_many(text))


def _limits_for(bucket: Bucket, settings: Settings) -> tuple[RateLimitItem, ...]:
    text = settings.rate_limit_create if bucket is Bucket.CREATE else settings.rate_limit_reveal
    return parse_limits(text)


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


class RateLimiter:
    """Counts hits per bucket and client in the configured storage."""

    def __init__(self) -> None:
        self._stores: dict[str, _Store] = {}
        self._pools: list[redis.asyncio.ConnectionPool] = []
        self._fallback = SlidingWindowCounterRateLimiter(LocalWindowStorage())

    def _store(self, url: str) -> _Store:
        if url not in self._stores:
            storage: Storage
            if url.startswith("memory://"):
                storage = LocalWindowStorage()
            else:
                pool = redis.asyncio.ConnectionPool.from_url(
                    url,
                    socket_timeout=STORAGE_TIMEOUT_SECONDS,
                    socket_connect_timeout=STORAGE_TIMEOUT_SECONDS,
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

    async def hit(self, costs: Mapping[Bucket, int], client: str) -> Verdict:
        """Spend `costs` for `client`; refuse at the first bucket that has too few left."""
        settings = get_settings()
        store = self._store(settings.rate_limit_storage_url)
        if store.failing and time.monotonic() < store.retry_at:
            return await _spend(self._fallback, costs, client, settings)
        try:
            verdict = await _spend(store.strategy, costs, client, settings)
        except StorageError as error:
            if not store.failing:
                logger.warning(
                    "rate-limit storage failed (%s); counting per process until it answers",
                    type(error.storage_error).__name__,
                )
            store.failing = True
            store.retry_at = time.monotonic() + STORAGE_RETRY_SECONDS
            return await _spend(self._fallback, costs, client, settings)
        if store.failing:
            logger.info("rate-limit storage answers again; counts are shared once more")
            store.failing = False
        return verdict

    async def aclose(self) -> None:
        """Close the Redis connections; the limiter reconnects if used again."""
        pools, self._pools = self._pools, []
        self._stores.clear()
        for pool in pools:
            await pool.aclose()


async def _spend(
    strategy: SlidingWindowCounterRateLimiter,
    costs: Mapping[Bucket, int],
    client: str,
    settings: Settings,
) -> Verdict:
    for bucket, cost in costs.items():
        for item in _limits_for(bucket, settings):
            identifiers = (settings.rate_limit_key_prefix, bucket.value, client)
            if await strategy.hit(item, *identifiers, cost=cost):
                continue
            if cost > item.amount:
                return Verdict(allowed=False, retry_after=item.get_expiry())
            stats = await strategy.get_window_stats(item, *identifiers)
            return Verdict(
                allowed=False, retry_after=max(1, math.ceil(stats.reset_time - time.time()))
            )
    return Verdict(allowed=True)


def client_of(request: Request) -> str:
    """Return the key this request's client is counted under."""
    trusted = parse_networks(tuple(get_settings().trusted_proxies))
    peer = request.client.host if request.client else None
    # Without trusted proxies the header is never believed, so it is not even read.
    forwarded_for = request.headers.getlist("x-forwarded-for") if trusted else ()
    return limit_key(resolve_client(peer, forwarded_for, trusted))


async def check(request: Request, costs: Mapping[Bucket, int]) -> Verdict:
    """Spend `costs` for the client of `request` with the application's limiter."""
    limiter: RateLimiter = request.app.state.rate_limiter
    return await limiter.hit(costs, client_of(request))


def limit(bucket: Bucket) -> Callable[[Request], Awaitable[None]]:
    """Return a FastAPI dependency that spends one hit of `bucket` or answers 429."""

    async def dependency(request: Request) -> None:
        verdict = await check(request, {bucket: 1})
        if not verdict.allowed:
            raise HTTPException(
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                detail=TOO_MANY_REQUESTS,
                headers={"Retry-After": str(verdict.retry_after)},
            )

    return dependency


def mutation_costs(document: DocumentNode, operation_name: str | None) -> dict[Bucket, int]:
    """Count the limited mutation fields an operation will run, per bucket.

    Each response key (alias) counts once, through fragments too. `@skip` and `@include`
    are not evaluated, so a skipped field still counts: an upper bound, never an undercount.
    """
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.MUTATION:
        return {}
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    response_keys: dict[str, str] = {}
    visited: set[str] = set()

    def collect(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                response_keys.setdefault(key, selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                collect(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in visited and name in fragments:
                    visited.add(name)
                    collect(fragments[name].selection_set)

    collect(operation.selection_set)
    costs: dict[Bucket, int] = {}
    for field in response_keys.values():
        if field in GRAPHQL_BUCKETS:
            bucket = GRAPHQL_BUCKETS[field]
            costs[bucket] = costs.get(bucket, 0) + 1
    return costs


class GraphQLRateLimit(SchemaExtension):
    """Charges a document's mutations to the client's buckets before any of them runs.

    Over the limit, nothing runs: the answer is HTTP 429 with `Retry-After`, and a GraphQL
    body whose only error has `extensions.code` `RATE_LIMITED` and `retryAfterSeconds`.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        """Spend the document's hits, or replace its execution with the refusal."""
        context = self.execution_context
        request = getattr(context.context, "request", None)
        document = context.graphql_document
        if isinstance(request, Request) and document is not None:
            costs = mutation_costs(document, context.operation_name)
            verdict = await check(request, costs) if costs else Verdict(allowed=True)
            if not verdict.allowed:
                response = context.context.response
                response.status_code = status.HTTP_429_TOO_MANY_REQUESTS
                response.headers["Retry-After"] = str(verdict.retry_after)
                extensions = {"code": "RATE_LIMITED", "retryAfterSeconds": verdict.retry_after}
                context.result = ExecutionResult(
                    data=None, errors=[GraphQLError(TOO_MANY_REQUESTS, extensions=extensions)]
                )
        yield
