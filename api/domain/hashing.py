"""Passphrases: one argon2id evaluation yields both the proof stored and the key withheld.

Argon2id's raw output is split with HMAC-SHA256 into a *verifier*, which is stored and
checked on reveal, and *key material*, which is never stored and goes into the secret's
content key (`api.domain.crypto`). Knowing the verifier does not give the key material, so a
copy of the database plus the link decrypts nothing without one full argon2id evaluation
per passphrase guess; a right passphrase costs exactly one evaluation, as a wrong one does.

This needs argon2id's raw output, which passlib's API does not expose (it returns only its
PHC string, whose checksum is the whole output): argon2-cffi's `hash_secret_raw` computes it,
with the same parameters. Records stored before this format (passlib's `$argon2id$` strings,
whose secrets are sealed under the secret key alone) are still verified through passlib.

Argon2 costs tens of milliseconds of CPU by design. Run on the event loop it would stall every
other request, so hashing and verifying happen in a thread pool sized to the CPU count
(argon2-cffi releases the GIL), behind an admission gate that keeps the queue of waiting work
in cheap coroutines, bounded in time (`api.domain.admission`). Parameters far below the
defaults (tests, benchmarks) hash in microseconds, less than the hand-off to a thread costs;
the hasher times itself once and then runs those inline.
"""

import asyncio
import base64
import hashlib
import hmac
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from passlib.hash import argon2 as passlib_argon2

from api.domain.admission import AdmissionGate
from api.settings import Settings

# Below this a hash blocks the event loop for less than a thread hand-off would cost.
INLINE_BELOW_SECONDS = 0.001
RECORD_PREFIX = "$ots2$"
SALT_BYTES = 16
RAW_BYTES = 32
_VERIFIER_LABEL = b"onetime-secrets/v2/verifier"
_KEY_LABEL = b"onetime-secrets/v2/content-key"
# No key material: a record of the first format, whose secret is sealed under its key alone.
LEGACY = b""


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    """argon2id's cost: memory in KiB, passes, lanes."""

    memory_kib: int
    time_cost: int
    parallelism: int


@dataclass(frozen=True, slots=True)
class Protected:
    """What hashing a new passphrase yields: the record to store and the key material not to."""

    record: str
    key_material: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _split(raw: bytes) -> tuple[bytes, bytes]:
    verifier = hmac.new(raw, _VERIFIER_LABEL, hashlib.sha256).digest()
    key_material = hmac.new(raw, _KEY_LABEL, hashlib.sha256).digest()
    return verifier, key_material


def _raw(passphrase: str, salt: bytes, parameters: Argon2Parameters) -> bytes:
    return hash_secret_raw(
        passphrase.encode("utf-8"),
        salt,
        time_cost=parameters.time_cost,
        memory_cost=parameters.memory_kib,
        parallelism=parameters.parallelism,
        hash_len=RAW_BYTES,
        type=Type.ID,
    )


def protect(passphrase: str, parameters: Argon2Parameters, salt: bytes | None = None) -> Protected:
    """Evaluate argon2id once on `passphrase` with a fresh salt; return record and key material.

    The record is `$ots2$m=…,t=…,p=…$<salt>$<verifier>` (unpadded base64).
    """
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    verifier, key_material = _split(_raw(passphrase, salt, parameters))
    costs = f"m={parameters.memory_kib},t={parameters.time_cost},p={parameters.parallelism}"
    return Protected(f"{RECORD_PREFIX}{costs}${_b64(salt)}${_b64(verifier)}", key_material)


def evaluate(passphrase: str, record: str) -> tuple[bytes, bytes]:
    """Run argon2id on `passphrase` with the salt and costs of a `$ots2$` record.

    Returns the verifier it yields (to compare with the record's) and the key material.
    """
    costs, salt, _ = record[len(RECORD_PREFIX) :].split("$")
    values = dict(part.split("=") for part in costs.split(","))
    parameters = Argon2Parameters(int(values["m"]), int(values["t"]), int(values["p"]))
    return _split(_raw(passphrase, _unb64(salt), parameters))


def unlock(passphrase: str, record: str) -> bytes | None:
    """Evaluate argon2id once against `record`; return its key material if `passphrase` fits.

    Returns `LEGACY` for a matching record of the first format, None for a mismatch.
    """
    if not record.startswith(RECORD_PREFIX):
        return LEGACY if passlib_argon2.verify(passphrase, record) else None
    verifier, key_material = evaluate(passphrase, record)
    stored = _unb64(record.rsplit("$", 1)[1])
    return key_material if hmac.compare_digest(verifier, stored) else None


class PassphraseHasher:
    """Protects and checks passphrases with argon2id in a bounded worker pool."""

    def __init__(
        self,
        *,
        memory_kib: int,
        time_cost: int,
        parallelism: int,
        workers: int,
        queue_timeout: float = math.inf,
    ) -> None:
        self.parameters = Argon2Parameters(memory_kib, time_cost, parallelism)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        # Callers hold a slot of the gate around their hashing (`api.domain.admission`): it
        # bounds the work in the pool and the queue of waiting requests.
        self.gate = AdmissionGate(slots=workers, timeout=queue_timeout)
        # Checked against when no row matches, so a miss costs what a hit costs.
        self._dummy_record = protect(os.urandom(16).hex(), self.parameters).record
        # Timed after that first call, which also pays for loading the library.
        started = time.perf_counter()
        unlock("", self._dummy_record)
        self.runs_inline = time.perf_counter() - started < INLINE_BELOW_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> "PassphraseHasher":
        """Build a hasher with the argon2 parameters and pool size from `settings`."""
        return cls(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
            workers=settings.hash_workers or _default_workers(),
            queue_timeout=settings.hash_queue_timeout_seconds,
        )

    async def protect(self, passphrase: str) -> Protected:
        """Return the record to store for `passphrase` and the key material it yields."""
        result: Protected = await self._run(protect, passphrase, self.parameters)
        return result

    async def unlock(self, passphrase: str, record: str | None) -> bytes | None:
        """Check `passphrase`: its key material (or `LEGACY`), or None if it does not fit.

        With no record, the same work is done against a dummy and None is returned.
        """
        target = record if record is not None else self._dummy_record
        key_material: bytes | None = await self._run(unlock, passphrase, target)
        return key_material if record is not None else None

    async def _run(self, function: Any, *args: Any) -> Any:
        if self.runs_inline:
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)


def _default_workers() -> int:
    # One memory-hard hash per core across all worker processes: more only evict each other's
    # caches (measured: ~15% more CPU per hash with 2 processes x 2 threads on 2 cores).
    # uvicorn and gunicorn take their worker count from WEB_CONCURRENCY.
    processes = int(os.environ.get("WEB_CONCURRENCY", "1") or "1")
    return max(1, (os.cpu_count() or 1) // max(1, processes))
