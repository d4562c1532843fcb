"""Rate limits on the REST door: a dependency per route that spends one hit or answers 429."""

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, status

from api.plumbing.ratelimit import TOO_MANY_REQUESTS, Bucket, check


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
