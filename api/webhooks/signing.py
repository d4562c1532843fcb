"""Signatures a receiver checks with any Standard Webhooks library.

`webhook-signature` is `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under
the secret's bytes; the secret is written `whsec_` and base64. The `standardwebhooks`
package (the specification's own, with no dependencies) computes it, so sender and
receivers share one implementation.
"""

import base64
import binascii
import secrets
from collections.abc import Mapping
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
# The specification allows 24 to 64 bytes; a secret outside that was not made by us.
_SECRET_BYTES_RANGE = range(24, 65)


def new_signing_secret() -> str:
    """Return a fresh signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """Return the key a `whsec_` secret holds; `ValueError` if it is not one (24 to 64 bytes)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a signing secret is whsec_ and base64") from None
    if len(key) not in _SECRET_BYTES_RANGE:
        raise ValueError("a signing secret holds 24 to 64 bytes")
    return key


def signature_headers(
    *, secret: str, webhook_id: str, timestamp: datetime, body: bytes
) -> Mapping[str, str]:
    """Return `webhook-id`, `webhook-timestamp` and `webhook-signature` for one attempt.

    `webhook_id` stays the same across retries, so a receiver can drop duplicates;
    `timestamp` is the attempt's own, since receivers refuse one older than a few minutes.
    """
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    if not webhook_id:
        raise ValueError("webhook_id must not be empty")
    signature = Webhook(secret_bytes(secret)).sign(webhook_id, timestamp, body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }
