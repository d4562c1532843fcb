"""The body of a webhook: what became of a secret, named by its receipt's public id.

It takes only a receipt's public facts, so no key, secret, passphrase or ciphertext can
reach a receiver by mistake.
"""

import enum
import json
from datetime import UTC, datetime


class WebhookEvent(enum.StrEnum):
    """The events a webhook reports: each closes a secret for good."""

    REVEALED = "secret.revealed"
    BURNED = "secret.burned"
    REVOKED = "secret.revoked"
    DESTROYED = "secret.destroyed"
    EXPIRED = "secret.expired"


def webhook_body(
    *,
    event: WebhookEvent,
    status: str,
    closed_at: datetime,
    failed_attempts: int,
    public_id: str,
) -> bytes:
    """Return the JSON body: compact, keys sorted, `closed_at` as `2026-12-08T13:00:51Z`."""
    if closed_at.tzinfo is None:
        raise ValueError("closed_at must be timezone-aware")
    if failed_attempts < 0:
        raise ValueError("failed_attempts must not be negative")
    document = {
        "type": str(event),
        "status": status,
        # The receipts' own format (api.domain.clock.format_timestamp), so both read alike.
        "closed_at": closed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "failed_attempts": failed_attempts,
        "public_id": public_id,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
