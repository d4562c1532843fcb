"""Domain errors raised by the service layer and mapped once by each transport."""


class SecretNotFound(Exception):
    """The secret cannot be revealed: unknown, expired, already read, or wrong passphrase.

    One error for every case on purpose, so callers cannot tell which it was.
    """

    message = "Secret not found"

    def __init__(self) -> None:
        super().__init__(self.message)


class InvalidInput(Exception):
    """A request value breaks a documented limit. The message names the field and the limit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
