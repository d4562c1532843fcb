"""REST routes: parse the request, call the service, shape the response. Nothing else."""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response, status

from api.access.authentication import CreatorDep
from api.access.rate_limits import Bucket, limit
from api.deps import AppPartsDep, DatabaseDep
from api.domain import service
from api.domain.errors import InvalidInput
from api.http.methods import changes_state_on_get
from api.rest.bodies import StrictJsonRoute
from api.rest.openapi import BAD_BODY, CREATE_ROUTE, NOT_FOUND, SECRET_ROUTE, UNAVAILABLE
from api.rest.query_passphrase import check_query_passphrase
from api.rest.schemas import (
    PASSPHRASE_BOUND,
    CreatedSecretResponse,
    CreateSecretRequest,
    RevealedSecretResponse,
    RevealRequest,
    StatusResponse,
)

router = APIRouter(route_class=StrictJsonRoute)

# The original API's form of a burn, still taken when there is no body; left out of the
# OpenAPI document, which describes the body form alone (a schema cannot say "one of them").
LegacyPassphraseQuery = Annotated[str | None, Query(include_in_schema=False)]
_BODY_REQUIRED = {"requestBody": {"required": True}}
_REVEAL_LIMIT = [Depends(limit(Bucket.REVEAL))]  # reveals and burns: both check a passphrase
# The query-string forms: a passphrase that is not text, or is repeated, is refused unspent.
_QUERY_FORM = [*_REVEAL_LIMIT, Depends(check_query_passphrase)]
SecretKeyPath = Annotated[
    str, Path(description="The 32-character hex key returned by `POST /generate`.")
]
PassphraseQuery = Annotated[
    str,
    Query(
        description="The passphrase. Query strings reach proxy logs: prefer the POST form.",
        json_schema_extra=PASSPHRASE_BOUND,
    ),
]


@router.post(
    "/generate",
    response_model=CreatedSecretResponse,
    responses={**BAD_BODY, **SECRET_ROUTE, **CREATE_ROUTE},
    tags=["secrets"],
)
async def generate(
    body: CreateSecretRequest,
    parts: AppPartsDep,
    creator: CreatorDep,
) -> CreatedSecretResponse:
    """Store a secret behind a passphrase and return the key that reveals it once.

    With CREATE_AUTH=token this needs `Authorization: Bearer <token>` (401 without one).
    """
    created = await service.create_secret(
        db=parts.db,
        settings=parts.settings,
        hasher=parts.hasher,
        secret=body.secret,
        passphrase=body.passphrase,
        ttl_seconds=body.ttl_seconds,
        creator=creator,
        notify_url=body.notify_url,
    )
    return CreatedSecretResponse(
        secret_key=created.secret_key,
        receipt_key=created.receipt_key,
        expires_at=created.expires_at,
        public_id=created.public_id,
    )


@router.get(
    "/secrets/{secret_key}",
    response_model=RevealedSecretResponse,
    responses={**NOT_FOUND, **SECRET_ROUTE},
    dependencies=_QUERY_FORM,
    tags=["secrets"],
)
@changes_state_on_get  # HEAD is refused (405) rather than reveal or claim an attempt
async def reveal_by_query(
    secret_key: SecretKeyPath,
    passphrase: PassphraseQuery,
    parts: AppPartsDep,
) -> RevealedSecretResponse:
    """Reveal a secret once and delete it (passphrase in the query string).

    Kept for compatibility with the original API; `POST /secrets/{secret_key}` keeps the
    passphrase out of URLs and logs. A `GET` that changes state: `HEAD` here answers `405`.
    """
    secret = await service.reveal_secret(
        db=parts.db,
        settings=parts.settings,
        hasher=parts.hasher,
        secret_key=secret_key,
        passphrase=passphrase,
    )
    return RevealedSecretResponse(secret=secret)


@router.post(
    "/secrets/{secret_key}",
    response_model=RevealedSecretResponse,
    responses={**NOT_FOUND, **BAD_BODY, **SECRET_ROUTE},
    dependencies=_REVEAL_LIMIT,
    tags=["secrets"],
)
async def reveal_by_body(
    secret_key: SecretKeyPath,
    body: RevealRequest,
    parts: AppPartsDep,
) -> RevealedSecretResponse:
    """Reveal a secret once and delete it (passphrase in the JSON body)."""
    secret = await service.reveal_secret(
        db=parts.db,
        settings=parts.settings,
        hasher=parts.hasher,
        secret_key=secret_key,
        passphrase=body.passphrase,
    )
    return RevealedSecretResponse(secret=secret)


@router.delete(
    "/secrets/{secret_key}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**NOT_FOUND, **BAD_BODY, **SECRET_ROUTE},
    dependencies=_QUERY_FORM,
    tags=["secrets"],
    openapi_extra=_BODY_REQUIRED,
)
async def burn(
    secret_key: SecretKeyPath,
    parts: AppPartsDep,
    # Documented as required (a plain object), but absent in the original API's form.
    body: RevealRequest = Body(None),  # noqa: B008
    passphrase: LegacyPassphraseQuery = None,
) -> None:
    """Destroy a secret unread.

    The passphrase goes in the JSON body. The original API's `?passphrase=…` is still
    accepted when there is no body, but query strings reach proxy and access logs.
    """
    given = body.passphrase if isinstance(body, RevealRequest) else passphrase
    if given is None:
        raise InvalidInput("passphrase", "passphrase is required, in the body or the query")
    await service.burn_secret(
        db=parts.db,
        settings=parts.settings,
        hasher=parts.hasher,
        secret_key=secret_key,
        passphrase=given,
    )


@router.get("/healthz", response_model=StatusResponse, tags=["probes"])
async def healthz() -> StatusResponse:
    """Report that the process is alive; touches no database."""
    return StatusResponse(status="ok")


@router.get(
    "/readyz",
    response_model=StatusResponse,
    responses=UNAVAILABLE,
    tags=["probes"],
)
async def readyz(db: DatabaseDep) -> StatusResponse:
    """Report ready when the database answers a trivial query."""
    await service.ping(db=db)
    return StatusResponse(status="ready")
