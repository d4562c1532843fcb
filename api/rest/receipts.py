"""REST routes for senders: follow a secret through its receipt key, and revoke it."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.access.rate_limits import Bucket, limit
from api.deps import DatabaseDep
from api.domain import receipts
from api.rest.bodies import StrictJsonRoute
from api.rest.openapi import RECEIPT_NOT_FOUND, RECEIPT_ROUTE
from api.rest.schemas import ReceiptResponse

router = APIRouter(
    dependencies=[Depends(limit(Bucket.RECEIPT))], tags=["receipts"], route_class=StrictJsonRoute
)

ReceiptKeyPath = Annotated[
    str, Path(description="The 32-character hex `receipt_key` returned by `POST /generate`.")
]


def _response(view: receipts.ReceiptView) -> ReceiptResponse:
    return ReceiptResponse(
        status=view.status,
        created_at=view.created_at,
        expires_at=view.expires_at,
        closed_at=view.closed_at,
        failed_attempts=view.failed_attempts,
        public_id=view.public_id,
        notify_url=view.notify_url,
        notification=view.notification,
    )


@router.get(
    "/receipts/{receipt_key}",
    response_model=ReceiptResponse,
    responses={**RECEIPT_NOT_FOUND, **RECEIPT_ROUTE},
)
async def read_receipt(receipt_key: ReceiptKeyPath, db: DatabaseDep) -> ReceiptResponse:
    """Tell the sender what became of the secret (pending, revealed, burned, revoked, …)."""
    return _response(await receipts.get_receipt(db=db, receipt_key=receipt_key))


@router.delete(
    "/receipts/{receipt_key}",
    response_model=ReceiptResponse,
    responses={**RECEIPT_NOT_FOUND, **RECEIPT_ROUTE},
)
async def revoke(receipt_key: ReceiptKeyPath, db: DatabaseDep) -> ReceiptResponse:
    """Destroy the secret if it is still pending, and return the receipt (idempotent)."""
    return _response(await receipts.revoke_secret(db=db, receipt_key=receipt_key))
