"""Links as the pages and the client write them: `{origin}/s/{secret_key}#{key}`."""

from dataclasses import dataclass
from urllib.parse import urlsplit

from ots.envelope import decode_key, encode_key

SECRET_PATH = "/s/"  # noqa: S105  (a path)
RECEIPT_PATH = "/r/"


class LinkError(ValueError):
    """The text is not a link to a secret or a receipt of this service."""


@dataclass(frozen=True)
class SecretLink:
    """Where a secret lives, and the key that opens it (None when the link has lost it)."""

    origin: str
    secret_key: str
    key: bytes | None


def secret_link(origin: str, secret_key: str, key: bytes) -> str:
    """Return the link a reader opens."""
    return f"{origin.rstrip('/')}{SECRET_PATH}{secret_key}#{encode_key(key)}"


def receipt_link(origin: str, receipt_key: str) -> str:
    """Return the link the sender keeps to follow and revoke."""
    return f"{origin.rstrip('/')}{RECEIPT_PATH}{receipt_key}"


def parse_secret_link(link: str) -> SecretLink:
    """Split a secret link; an absent or empty fragment gives `key=None`."""
    origin, secret_key = _split(link, SECRET_PATH)
    fragment = urlsplit(link.strip()).fragment
    return SecretLink(origin, secret_key, decode_key(fragment) if fragment else None)


def parse_receipt_link(link: str) -> tuple[str, str]:
    """Return the origin and receipt key of a receipt link."""
    return _split(link, RECEIPT_PATH)


def _split(link: str, prefix: str) -> tuple[str, str]:
    parts = urlsplit(link.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise LinkError("expected an http:// or https:// link")
    root, found, key = parts.path.rpartition(prefix)
    if not found or not _is_key(key):
        raise LinkError(f"expected a link of the form {{server}}{prefix}<32 hex characters>")
    return f"{parts.scheme}://{parts.netloc}{root}", key


def _is_key(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
