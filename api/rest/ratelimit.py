"""Rate limits on the REST door: a dependency per route that spends one hit or answers 429.

Creating has its own dependency: in token mode it first identifies the creator (401 without
a valid token), whose creates are then counted per token rather than per address. A refused
token spends a hit of its address's `create` bucket, so guessing tokens soon gets 429.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from api.deps import DatabaseDep
from api.domain.creators import Creator
from api.domain.errors import Unauthenticated
from api.plumbing.creators import identify_creator
from api.plumbing.ratelimit import TOO_MANY_REQUESTS, Bucket, check


async def _spend(request: Request, bucket: Bucket, creator: Creator | None = None) -> None:
    verdict = await check(request, {bucket: 1}, creator)
    if not verdict.allowed:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=TOO_MANY_REQUESTS,
            headers={"Retry-After": str(verdict.retry_after)},
        )


def limit(bucket: Bucket) -> Callable[[Request], Awaitable[None]]:
    """Return a FastAPI dependency that spends one hit of `bucket` or answers 429."""

    async def dependency(request: Request) -> None:
        await _spend(request, bucket)

    return dependency


async def _creator_within_limit(request: Request, db: DatabaseDep) -> Creator | None:
    try:
        creator = await identify_creator(request, db)
    except Unauthenticated:
        await _spend(request, Bucket.CREATE)  # a refused token costs its address (429 when over)
        raise
    await _spend(request, Bucket.CREATE, creator)
    return creator


CreatorDep = Annotated[Creator | None, Depends(_creator_within_limit)]
"""Who is creating (None in open mode), once the `create` bucket has a hit to spare."""
