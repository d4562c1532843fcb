"""The `ots1` envelope: a secret sealed in the browser or terminal, opened by the reader.

The contract is `docs/e2e.md`, with vectors in `docs/e2e-vectors.json`. The key lives only
in the link's fragment; the server stores the envelope like any secret, behind its passphrase.
"""

import base64
import binascii
import re
import secrets
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX: Final = "ots1."
ASSOCIATED_DATA: Final = b"ots1"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
# Unpadded RFC 4648 §5 text: anything else (padding, `+`, `/`, spaces) is refused, so one
# envelope has exactly one spelling.
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")


class EnvelopeError(ValueError):
    """The text is not an `ots1` envelope, or the key cannot open it."""


def encode_base64url(data: bytes) -> str:
    """Return `data` as base64url without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_base64url(text: str) -> bytes:
    """Return the bytes of unpadded base64url `text`; raise `EnvelopeError` on anything else."""
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise EnvelopeError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise EnvelopeError("not unpadded base64url") from None
    if encode_base64url(data) != text:  # stray bits in the last character
        raise EnvelopeError("not canonical base64url")
    return data


def new_key() -> bytes:
    """Return a fresh 32-byte key from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def encode_key(key: bytes) -> str:
    """Return the key as it appears after `#` in a link (43 characters)."""
    _check_key(key)
    return encode_base64url(key)


def decode_key(text: str) -> bytes:
    """Return the key in a link's fragment; raise `EnvelopeError` unless it is 32 bytes."""
    key = decode_base64url(text)
    _check_key(key)
    return key


def is_envelope(text: str) -> bool:
    """Tell whether `text` claims to be an `ots1` envelope (it may still fail to open)."""
    return text.startswith(PREFIX)


def seal(plaintext: bytes, key: bytes, *, nonce: bytes | None = None) -> str:
    """Encrypt `plaintext` under `key` into an envelope; a fresh random nonce unless given."""
    _check_key(key)
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise EnvelopeError(f"the nonce must be {NONCE_BYTES} bytes")
    sealed = AESGCM(key).encrypt(nonce, plaintext, ASSOCIATED_DATA)
    return PREFIX + encode_base64url(nonce + sealed)


def open_envelope(envelope: str, key: bytes) -> bytes:
    """Return the plaintext bytes of `envelope`; raise `EnvelopeError` if it does not open."""
    _check_key(key)
    if not is_envelope(envelope):
        raise EnvelopeError("not an ots1 envelope")
    data = decode_base64url(envelope[len(PREFIX) :])
    if len(data) < NONCE_BYTES + TAG_BYTES:
        raise EnvelopeError("the envelope is too short")
    try:
        return AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], ASSOCIATED_DATA)
    except InvalidTag:
        raise EnvelopeError("the key does not open this envelope") from None


def envelope_length(plaintext_bytes: int) -> int:
    """Return the length of the envelope of a plaintext of `plaintext_bytes` bytes."""
    sealed = NONCE_BYTES + plaintext_bytes + TAG_BYTES
    return len(PREFIX) + (4 * sealed + 2) // 3


def max_plaintext_bytes(max_envelope_bytes: int) -> int:
    """Return the largest plaintext whose envelope fits in `max_envelope_bytes` (0 if none)."""
    fits = (3 * (max_envelope_bytes - len(PREFIX))) // 4 - NONCE_BYTES - TAG_BYTES
    return max(fits, 0) if envelope_length(max(fits, 0)) <= max_envelope_bytes else 0


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise EnvelopeError(f"the key must be {KEY_BYTES} bytes")
