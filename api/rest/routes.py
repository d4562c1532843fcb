"""REST routes: parse the request, call the service, shape the response. Nothing else."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status

from api import service
from api.database import DatabaseDep
from api.errors import SecretNotFound
from api.ratelimit import RATE_LIMITED_RESPONSE, Bucket, limit
from api.rest.errors import UNAVAILABLE_DETAIL, UNSUPPORTED_MEDIA_DETAIL
from api.rest.schemas import (
    PASSPHRASE_BOUND,
    CreatedSecretResponse,
    CreateSecretRequest,
    ErrorResponse,
    RevealedSecretResponse,
    RevealRequest,
    StatusResponse,
)

router = APIRouter()

Responses = dict[int | str, dict[str, Any]]


def _error(description: str, example: object) -> dict[str, Any]:
    return {
        "model": ErrorResponse,
        "description": description,
        "content": {"application/json": {"example": {"detail": example}}},
    }


_NOT_FOUND: Responses = {
    404: _error(
        "Unknown key, wrong passphrase, already revealed or expired: "
        "one identical body for every case.",
        SecretNotFound.message,
    )
}
_BAD_BODY: Responses = {
    400: _error("The body is not UTF-8 or nests too deeply.", "Request body is not valid UTF-8"),
    413: _error(
        "The body is larger than MAX_REQUEST_BYTES.", "Request body too large: at most 397312 bytes"
    ),
    415: _error("The body is not `application/json`.", UNSUPPORTED_MEDIA_DETAIL),
}
_UNAVAILABLE: Responses = {
    503: _error(
        "The database does not answer (down, or every connection busy).", UNAVAILABLE_DETAIL
    )
}
_INVALID: Responses = {
    422: {
        "description": "A field is missing, has the wrong type or breaks a limit; the "
        "rejected value is never quoted.",
        "content": {
            "application/json": {
                "example": {
                    "detail": [
                        {
                            "type": "value_error",
                            "loc": ["body", "passphrase"],
                            "msg": "passphrase must be at most 1024 characters",
                        }
                    ]
                }
            }
        },
    }
}
_SECRET_ROUTE: Responses = {**_INVALID, **RATE_LIMITED_RESPONSE, **_UNAVAILABLE}
_CREATE_LIMIT = [Depends(limit(Bucket.CREATE))]
_REVEAL_LIMIT = [Depends(limit(Bucket.REVEAL))]  # reveals and burns: both check a passphrase
SecretKeyPath = Annotated[
    str, Path(description="The 32-character hex key returned by `POST /generate`.")
]
PassphraseQuery = Annotated[
    str,
    Query(
        min_length=1,
        description="The passphrase. Query strings reach proxy logs: prefer the POST form.",
        json_schema_extra=PASSPHRASE_BOUND,
    ),
]


@router.post(
    "/generate",
    response_model=CreatedSecretResponse,
    responses={**_BAD_BODY, **_SECRET_ROUTE},
    dependencies=_CREATE_LIMIT,
    tags=["secrets"],
)
async def generate(body: CreateSecretRequest, db: DatabaseDep) -> CreatedSecretResponse:
    """Store a secret behind a passphrase and return the key that reveals it once."""
    created = await service.create_secret(
        db=db,
        secret=body.secret,
        passphrase=body.passphrase,
        ttl_seconds=body.ttl_seconds,
    )
    return CreatedSecretResponse(secret_key=created.secret_key, expires_at=created.expires_at)


@router.get(
    "/secrets/{secret_key}",
    response_model=RevealedSecretResponse,
    responses={**_NOT_FOUND, **_SECRET_ROUTE},
    dependencies=_REVEAL_LIMIT,
    tags=["secrets"],
)
async def reveal_by_query(
    secret_key: SecretKeyPath, passphrase: PassphraseQuery, db: DatabaseDep
) -> RevealedSecretResponse:
    """Reveal a secret once and delete it (passphrase in the query string).

    Kept for compatibility with the original API; `POST /secrets/{secret_key}` keeps the
    passphrase out of URLs and logs.
    """
    secret = await service.reveal_secret(db=db, secret_key=secret_key, passphrase=passphrase)
    return RevealedSecretResponse(secret=secret)


@router.post(
    "/secrets/{secret_key}",
    response_model=RevealedSecretResponse,
    responses={**_NOT_FOUND, **_BAD_BODY, **_SECRET_ROUTE},
    dependencies=_REVEAL_LIMIT,
    tags=["secrets"],
)
async def reveal_by_body(
    secret_key: SecretKeyPath, body: RevealRequest, db: DatabaseDep
) -> RevealedSecretResponse:
    """Reveal a secret once and delete it (passphrase in the JSON body)."""
    secret = await service.reveal_secret(db=db, secret_key=secret_key, passphrase=body.passphrase)
    return RevealedSecretResponse(secret=secret)


@router.delete(
    "/secrets/{secret_key}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_NOT_FOUND, **_SECRET_ROUTE},
    dependencies=_REVEAL_LIMIT,
    tags=["secrets"],
)
async def burn(secret_key: SecretKeyPath, passphrase: PassphraseQuery, db: DatabaseDep) -> None:
    """Destroy a secret unread."""
    await service.burn_secret(db=db, secret_key=secret_key, passphrase=passphrase)


@router.get("/healthz", response_model=StatusResponse, tags=["probes"])
async def healthz() -> StatusResponse:
    """Report that the process is alive; touches no database."""
    return StatusResponse(status="ok")


@router.get(
    "/readyz",
    response_model=StatusResponse,
    responses=_UNAVAILABLE,
    tags=["probes"],
)
async def readyz(db: DatabaseDep) -> StatusResponse:
    """Report ready when the database answers a trivial query."""
    await service.ping(db=db)
    return StatusResponse(status="ready")
