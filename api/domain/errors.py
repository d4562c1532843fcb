"""Domain errors raised by the service layer and mapped once by each door."""


class SecretNotFound(Exception):
    """The secret cannot be revealed: unknown, expired, already read, or wrong passphrase.

    One error for every case on purpose, so callers cannot tell which it was.
    """

    message = "Secret not found"

    def __init__(self) -> None:
        super().__init__(self.message)


class InvalidInput(Exception):
    """A request value breaks a documented limit. The message names the field and the limit.

    `field` is the snake_case name of the argument; the message never quotes its value.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class ServiceUnavailable(Exception):
    """The service cannot take the request now (database down, or at capacity); retry later."""

    message = "Service temporarily unavailable: the database does not answer"
    AT_CAPACITY = "Service temporarily unavailable: at capacity, retry after Retry-After seconds"

    def __init__(self, retry_after_seconds: int, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)
        self.retry_after_seconds = retry_after_seconds


class ReceiptNotFound(Exception):
    """No receipt for this key: unknown, malformed, or purged after its retention."""

    message = "Receipt not found"

    def __init__(self) -> None:
        super().__init__(self.message)


class StorageQuotaReached(Exception):
    """Storing this secret would take the store past MAX_STORED_BYTES or MAX_LIVE_SECRETS.

    Nothing was stored. Room comes back as secrets are revealed, burned, revoked or purged.
    """

    message = "Storage quota reached"

    def __init__(self) -> None:
        super().__init__(self.message)


class Unauthenticated(Exception):
    """Creating needs a creator token (CREATE_AUTH=token) and none valid was presented.

    One error whether the token is missing, unknown or revoked, so an answer never tells
    which tokens exist. `presented` says whether a token was sent at all (RFC 6750 answers
    the two differently in `WWW-Authenticate`).
    """

    message = "A valid creator token is required: Authorization: Bearer <token>"

    def __init__(self, *, presented: bool) -> None:
        super().__init__(self.message)
        self.presented = presented
