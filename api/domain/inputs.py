"""The rules every input must pass before the service changes any state.

Both doors hand raw values to the service, which checks them here first, so a third door
would inherit the same rules and the same messages. A message names the field and the limit,
never the value (it may be a secret).
"""

from api.domain.errors import InvalidInput
from api.settings import Settings
from api.webhooks import DestinationPolicy, check_url


def not_text_message(field: str) -> str:
    """Return the message for a value holding a lone surrogate, which is not Unicode text."""
    return f"{field} must be valid Unicode text"


def _encode(value: str, field: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800") is a valid Python string but not text.
        raise InvalidInput(field, not_text_message(field)) from None


def secret_bytes(secret: str, settings: Settings) -> bytes:
    """Return `secret` as UTF-8, or raise `InvalidInput` if it is empty, too long or not text."""
    encoded = _encode(secret, "secret")
    if not encoded:
        raise InvalidInput("secret", "secret must not be empty")
    if len(encoded) > settings.max_secret_bytes:
        raise InvalidInput(
            "secret", f"secret must be at most {settings.max_secret_bytes} bytes of UTF-8"
        )
    return encoded


def check_passphrase(passphrase: str, settings: Settings) -> None:
    """Raise `InvalidInput` if `passphrase` is empty, too long or not text."""
    if not passphrase:
        raise InvalidInput("passphrase", "passphrase must not be empty")
    if len(passphrase) > settings.max_passphrase_length:
        raise InvalidInput(
            "passphrase",
            f"passphrase must be at most {settings.max_passphrase_length} characters",
        )
    _encode(passphrase, "passphrase")


def ttl(ttl_seconds: int | None, settings: Settings) -> int:
    """Return the lifetime to use: the default, or `ttl_seconds` if within the bounds."""
    if ttl_seconds is None:
        return settings.default_ttl_seconds
    if not settings.min_ttl_seconds <= ttl_seconds <= settings.max_ttl_seconds:
        raise InvalidInput(
            "ttl_seconds",
            f"ttl_seconds must be between {settings.min_ttl_seconds} "
            f"and {settings.max_ttl_seconds}",
        )
    return ttl_seconds


def notify_url(url: str | None, policy: DestinationPolicy) -> str | None:
    """Return `url` if this instance may notify it (`api.webhooks.policy`), else refuse.

    The reason names the rule, never the URL: its path or query may hold a token.
    """
    if url is None:
        return None
    _encode(url, "notify_url")
    refusal = check_url(url, policy)
    if refusal is not None:
        raise InvalidInput("notify_url", f"notify_url refused: {refusal}")
    return url
