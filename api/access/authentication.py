"""Creator-token authentication of a request, for both doors (CREATE_AUTH=token).

Only creating needs a token (`Authorization: Bearer ots_…`); what a token is, and the look-up
of a stored one, is `api.domain.creators`. Before anything creates, its door calls
`spend_as_creator`: in token mode it names the creator, whose creates the `create` bucket
then counts per token, and a request without a valid token is refused (`Unauthenticated`)
before any hashing; a refusal spends a hit of the address's `create` bucket, so guessing
tokens soon gets 429 instead. REST answers the refusal with 401, GraphQL with
`UNAUTHENTICATED`, both with the challenge of `www_authenticate`. REST takes the creator as
`CreatorDep`; GraphQL's rate-limit extension (`api.gql.rate_limits`) puts it in the context.
"""

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection, Request

from api.access.rate_limits import Bucket, Verdict, check, refuse_over_limit
from api.deps import AppPartsDep, Database
from api.domain import creators
from api.domain.creators import Creator
from api.domain.errors import Unauthenticated
from api.settings import Settings

REALM = "onetime-secrets"


def bearer_token(connection: HTTPConnection) -> str | None:
    """Return the request's bearer token; `""` for an Authorization header of another kind."""
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def identify_creator(
    connection: HTTPConnection, db: Database, settings: Settings
) -> Creator | None:
    """Return the creator in token mode (raising `Unauthenticated`), or None in open mode."""
    if settings.create_auth == "open":
        return None
    return await creators.authenticate(db=db, token=bearer_token(connection))


async def spend_as_creator(
    connection: HTTPConnection, db: Database, settings: Settings, costs: Mapping[Bucket, int]
) -> tuple[Creator | None, Verdict]:
    """Spend `costs`, creates as the request's creator; return the creator and the verdict.

    Raises `Unauthenticated` when `costs` create without a valid token in token mode, unless
    the hit that refusal costs the address is over the limit: then the verdict refuses.
    """
    creator = None
    if Bucket.CREATE in costs:
        try:
            creator = await identify_creator(connection, db, settings)
        except Unauthenticated:
            # A refused token costs its address, so guessing tokens soon gets 429.
            verdict = await check(connection, {Bucket.CREATE: 1})
            if verdict.allowed:
                raise
            return None, verdict
    verdict = await check(connection, costs, creator) if costs else Verdict(allowed=True)
    return creator, verdict


def www_authenticate(error: Unauthenticated) -> str:
    """Return the challenge of a 401 (RFC 6750): `invalid_token` only if a token was sent."""
    challenge = f'Bearer realm="{REALM}"'
    return f'{challenge}, error="invalid_token"' if error.presented else challenge


async def _creator_within_limit(request: Request, parts: AppPartsDep) -> Creator | None:
    creator, verdict = await spend_as_creator(request, parts.db, parts.settings, {Bucket.CREATE: 1})
    refuse_over_limit(verdict)
    return creator


CreatorDep = Annotated[Creator | None, Depends(_creator_within_limit)]
"""REST's creator (None in open mode), once the `create` bucket has a hit to spare."""
