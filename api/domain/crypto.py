"""Secret keys, the lookup hash and authenticated encryption of secrets at rest.

The secret key (128 random bits) is the only thing that unlocks a row: the row is found by
SHA-256 of the key, and the content is sealed with AES-256-GCM under a key derived from it
with HKDF. The database never sees the secret key, so a dump alone decrypts nothing.
"""

import hashlib
import os
import re
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_KEY_BYTES = 16
NONCE_BYTES = 12
_HKDF_INFO = b"onetime-secrets/v1/aes-256-gcm"
_SECRET_KEY_PATTERN = re.compile(r"[0-9a-f]{32}")


def new_key() -> str:
    """Return a fresh secret or receipt key: 32 lowercase hex characters (128 bits)."""
    return secrets.token_hex(SECRET_KEY_BYTES)


def is_well_formed_key(key: str) -> bool:
    """Whether `key` has the shape of a secret or receipt key this service hands out."""
    return _SECRET_KEY_PATTERN.fullmatch(key) is not None


def lookup_hash(key: str) -> bytes:
    """Return the digest that finds a row by its key without revealing the key."""
    return hashlib.sha256(key.encode("ascii")).digest()


def _content_key(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        bytes.fromhex(secret_key)
    )


def seal(plaintext: bytes, *, secret_key: str, associated_data: bytes) -> bytes:
    """Encrypt `plaintext`; the result is nonce followed by ciphertext and tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(_content_key(secret_key)).encrypt(nonce, plaintext, associated_data)


def open_sealed(sealed: bytes, *, secret_key: str, associated_data: bytes) -> bytes:
    """Decrypt what `seal` produced; raises `cryptography.exceptions.InvalidTag` if tampered."""
    nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    return AESGCM(_content_key(secret_key)).decrypt(nonce, ciphertext, associated_data)
