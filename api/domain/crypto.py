"""Secret keys, the lookup hash and authenticated encryption of secrets at rest.

A row is found by SHA-256 of its secret key (128 random bits), and its content is sealed with
AES-256-GCM under a key derived with HKDF from the secret key *and* the passphrase's key
material (`api.domain.hashing`: argon2id output that is never stored). So the database plus
the link is not enough: each passphrase guess costs an attacker one argon2id evaluation.

Secrets stored before the passphrase took part (`key_material=LEGACY`, empty) were sealed
under the secret key alone; they still open until they are read or expire.
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
_HKDF_INFO = {
    False: b"onetime-secrets/v1/aes-256-gcm",  # the secret key alone
    True: b"onetime-secrets/v2/aes-256-gcm",  # the secret key and the passphrase
}
_SECRET_KEY_PATTERN = re.compile(r"[0-9a-f]{32}")


def new_key() -> str:
    """Return a fresh secret or receipt key: 32 lowercase hex characters (128 bits)."""
    return secrets.token_hex(SECRET_KEY_BYTES)


def new_public_id() -> str:
    """Return a receipt's public id: `rcpt_` and 96 random bits, neither key nor from one."""
    return "rcpt_" + secrets.token_urlsafe(12)


def is_well_formed_key(key: str) -> bool:
    """Whether `key` has the shape of a secret or receipt key this service hands out."""
    return _SECRET_KEY_PATTERN.fullmatch(key) is not None


def lookup_hash(key: str) -> bytes:
    """Return the digest that finds a row by its key without revealing the key."""
    return hashlib.sha256(key.encode("ascii")).digest()


def _content_key(secret_key: str, key_material: bytes) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO[bool(key_material)]
    )
    return hkdf.derive(bytes.fromhex(secret_key) + key_material)


def seal(
    plaintext: bytes, *, secret_key: str, key_material: bytes, associated_data: bytes
) -> bytes:
    """Encrypt `plaintext`; the result is nonce followed by ciphertext and tag."""
    nonce = os.urandom(NONCE_BYTES)
    key = _content_key(secret_key, key_material)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(
    sealed: bytes, *, secret_key: str, key_material: bytes, associated_data: bytes
) -> bytes:
    """Decrypt what `seal` produced.

    Raises `cryptography.exceptions.InvalidTag` for a wrong key, wrong key material (a wrong
    passphrase) or tampering.
    """
    nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    key = _content_key(secret_key, key_material)
    return AESGCM(key).decrypt(nonce, ciphertext, associated_data)
