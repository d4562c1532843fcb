"""Run the real service as a uvicorn subprocess on a free port, for tests that cross HTTP."""

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness.uvicorn import Uvicorn

# Cheap argon2 and generous rate limits: these servers are driven by tests, not people.
BASE_ENV = {
    "ARGON2_MEMORY_KIB": "1024",
    "ARGON2_TIME_COST": "1",
    "ALLOW_WEAK_ARGON2": "true",
    "RATE_LIMIT_CREATE": "1000000/minute",
    "RATE_LIMIT_REVEAL": "1000000/minute",
    "RATE_LIMIT_RECEIPT": "1000000/minute",
    # Races and load here test correctness; admission control has tests of its own.
    "HASH_QUEUE_TIMEOUT_SECONDS": "inf",
    # A busy machine may answer a shared counter late; tests of the fallback stop Redis.
    "RATE_LIMIT_STORAGE_TIMEOUT_SECONDS": "30",
}


@contextlib.contextmanager
def run_server(
    env: dict[str, str],
    *,
    workers: int = 1,
    ready_timeout: float = 60,
    extra_args: Sequence[str] = (),
) -> Iterator[Uvicorn]:
    """Start `uvicorn main:app` with `env` on a free port, ready once `/readyz` answers; stop
    it (SIGTERM) on exit. Its output goes to `env["SERVER_LOG"]`, or to a temporary file."""
    log = env.get("SERVER_LOG") or tempfile.mkstemp(prefix="uvicorn-", suffix=".log")[1]
    server = Uvicorn(
        {**os.environ, **BASE_ENV, **env}, Path(log), workers=workers, options=extra_args
    )
    server.start()
    try:
        server.wait_ready(
            lambda: server.answers("/readyz", timeout=1), timeout=ready_timeout, every=0.1
        )
        yield server
    finally:
        server.stop(timeout=15)
