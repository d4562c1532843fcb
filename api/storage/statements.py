"""The SQL the service runs, built once with SQLAlchemy Core and bound per call.

`api.storage.writes` and `api.storage.attempts` combine them into transactions, and
`api.domain.service` explains how those make an exactly-once reveal. The purge's statements
are in `api.storage.purge`, the storage quota's in `api.storage.usage`.
"""

from sqlalchemy import Table, bindparam, delete, func, insert, literal, select, text, update

from models import CreatorToken, Notification, Receipt, Secret, StoredReceiptStatus

secrets_table: Table = Secret.__table__  # type: ignore[attr-defined]
secret_columns = secrets_table.c
receipts_table: Table = Receipt.__table__  # type: ignore[attr-defined]
receipt_columns = receipts_table.c
notifications_table: Table = Notification.__table__  # type: ignore[attr-defined]
notification_columns = notifications_table.c
# What a deleted row gave back to the storage quota (`api.storage.usage`).
SIZE = func.length(secret_columns.ciphertext).label("size")

# Every column is given a value, so the INSERT names them all.
INSERT_SECRET = insert(secrets_table)
# Claims one passphrase check on a live secret that has attempts left; returns the row.
CLAIM_ATTEMPT = (
    update(secrets_table)
    .where(
        secret_columns.lookup_hash == bindparam("digest"),
        secret_columns.expires_at > bindparam("now"),
        secret_columns.failed_attempts < bindparam("max_attempts"),
    )
    .values(failed_attempts=secret_columns.failed_attempts + 1)
    .returning(
        secret_columns.id,
        secret_columns.passphrase_hash,
        secret_columns.failed_attempts,
        secret_columns.receipt_id,
    )
)
# Gives back an attempt whose check did not finish (refused at capacity, client gone).
REFUND_ATTEMPT = (
    update(secrets_table)
    .where(secret_columns.id == bindparam("row_id"), secret_columns.failed_attempts > 0)
    .values(failed_attempts=secret_columns.failed_attempts - 1)
    .returning(secret_columns.receipt_id)
)
# PostgreSQL: this transaction's commit does not wait for its WAL flush (`api.storage.attempts`).
ASYNCHRONOUS_COMMIT = text("SET LOCAL synchronous_commit = off")
# Whether a claim that found nothing met a live secret whose attempts are all being checked.
LIVE_SECRET = select(secret_columns.id).where(
    secret_columns.lookup_hash == bindparam("digest"), secret_columns.expires_at > bindparam("now")
)
# Takes a live row: only one caller can, so only one caller gets the ciphertext.
DELETE_LIVE = (
    delete(secrets_table)
    .where(secret_columns.id == bindparam("id"), secret_columns.expires_at > bindparam("now"))
    .returning(SIZE, secret_columns.ciphertext)
)
DELETE = delete(secrets_table).where(secret_columns.id == bindparam("id")).returning(SIZE)
# A revoke takes the live secret of a receipt; racing a reveal or a burn, one DELETE wins.
DELETE_LIVE_OF_RECEIPT = (
    delete(secrets_table)
    .where(
        secret_columns.receipt_id == bindparam("receipt_id"),
        secret_columns.expires_at > bindparam("now"),
    )
    .returning(SIZE)
)

INSERT_RECEIPT = insert(receipts_table)
# Run by the winner of a secret's deletion, in the same transaction: a receipt leaves
# `pending` once. `right_attempt` (1 or 0) takes back the attempt that the winner claimed
# with the right passphrase (a reveal, a burn): it was not a failed one.
CLOSE_RECEIPT = (
    update(receipts_table)
    .where(
        receipt_columns.id == bindparam("receipt_id"),
        receipt_columns.status == StoredReceiptStatus.PENDING.value,
    )
    .values(
        status=bindparam("status"),
        closed_at=bindparam("closed_at"),
        failed_attempts=receipt_columns.failed_attempts - bindparam("right_attempt"),
    )
    # Whether its sender asked to be told (`api.storage.notifications`). The column itself,
    # not `notify_url IS NOT NULL`: SQLite 3.40 answers that 1 in RETURNING for a NULL in a
    # column added by ALTER TABLE (`tests/api/test_receipts.py`, purge after migration).
    .returning(receipt_columns.notify_url)
)
# A receipt counts the attempts its secret has claimed: +1 with a claim, -1 with a refund.
COUNT_RECEIPT_ATTEMPTS = (
    update(receipts_table)
    .where(receipt_columns.id == bindparam("receipt_id"))
    .values(failed_attempts=receipt_columns.failed_attempts + bindparam("change"))
)
FIND_RECEIPT = (
    select(
        receipt_columns.id,
        receipt_columns.status,
        receipt_columns.failed_attempts,
        receipt_columns.created_at,
        receipt_columns.expires_at,
        receipt_columns.closed_at,
        receipt_columns.public_id,
        receipt_columns.notify_url,
        notification_columns.state,
    )
    .select_from(
        receipts_table.outerjoin(
            notifications_table, notification_columns.receipt_id == receipt_columns.id
        )
    )
    .where(
        receipt_columns.lookup_hash == bindparam("digest"),
        receipt_columns.retain_until > bindparam("now"),
    )
)
tokens_table: Table = CreatorToken.__table__  # type: ignore[attr-defined]
token_columns = tokens_table.c
INSERT_TOKEN = insert(tokens_table)
_TOKEN_FIELDS = (
    token_columns.name,
    token_columns.rate_limit,
    token_columns.created_at,
    token_columns.last_used_at,
    token_columns.revoked_at,
)
FIND_TOKEN_BY_NAME = select(*_TOKEN_FIELDS).where(token_columns.name == bindparam("token_name"))
LIST_TOKENS = select(*_TOKEN_FIELDS).order_by(token_columns.created_at, token_columns.name)
# A revoked token finds nothing: revocation takes effect on the next request.
FIND_LIVE_TOKEN = select(
    token_columns.id, token_columns.name, token_columns.rate_limit, token_columns.last_used_at
).where(token_columns.token_hash == bindparam("digest"), token_columns.revoked_at.is_(None))
TOUCH_TOKEN = (
    update(tokens_table)
    .where(token_columns.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now"))
)
# A token's notification signing secret is derived from its id and generation.
TOKEN_SIGNING = select(token_columns.id, token_columns.signing_generation).where(
    token_columns.name == bindparam("token_name")
)
ROTATE_TOKEN_SIGNING = (
    update(tokens_table)
    .where(token_columns.name == bindparam("token_name"))
    .values(signing_generation=token_columns.signing_generation + 1)
    .returning(token_columns.id, token_columns.signing_generation)
)
REVOKE_TOKEN = (
    update(tokens_table)
    .where(token_columns.name == bindparam("token_name"), token_columns.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)
COUNT_LIVE = (
    select(func.count())
    .select_from(secrets_table)
    .where(secret_columns.expires_at > bindparam("now"))
)
PING = select(literal(1))
