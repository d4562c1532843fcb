"""Who is creating: in token mode (CREATE_AUTH=token), the creator a bearer token names.

Both doors call `identify_creator` before they spend the `create` rate-limit bucket, so a
valid token's creates are counted per token, and a request without one is refused before
any hashing. `www_authenticate` is the header both doors send with their 401.
"""

from starlette.requests import HTTPConnection

from api.domain import creators
from api.domain.creators import Creator
from api.domain.errors import Unauthenticated
from api.settings import get_settings
from api.storage.database import Database

REALM = "onetime-secrets"


def bearer_token(connection: HTTPConnection) -> str | None:
    """Return the request's bearer token; `""` for an Authorization header of another kind."""
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def identify_creator(connection: HTTPConnection, db: Database) -> Creator | None:
    """Return the creator in token mode (raising `Unauthenticated`), or None in open mode."""
    if get_settings().create_auth == "open":
        return None
    return await creators.authenticate(db=db, token=bearer_token(connection))


def www_authenticate(error: Unauthenticated) -> str:
    """Return the challenge of a 401 (RFC 6750): `invalid_token` only if a token was sent."""
    challenge = f'Bearer realm="{REALM}"'
    return f'{challenge}, error="invalid_token"' if error.presented else challenge
