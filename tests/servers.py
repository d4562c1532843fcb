"""Run the real service as a uvicorn subprocess on a free port, for tests that cross HTTP."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from harness import ROOT
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
# What a racer process writes when it is ready to start (`run_racers`, `wait_for_start`).
READY = b"ready\n"


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


def run_racers(
    plans: Sequence[dict[str, Any]],
    directory: Path,
    *,
    timeout: float = 120,
    module: str = "tests.receipt_racer",
) -> list[list[dict[str, Any]]]:
    """Run one `module` process (a racer) per plan; return each one's records.

    The racers start together, however long each takes to get ready: each says so
    (`wait_for_start`), and once all have, each is told the same start time, now.
    """
    started = []
    for number, plan in enumerate(plans):
        plan_path = directory / f"racer-{number}-plan.json"
        plan_path.write_text(json.dumps(plan))
        results = directory / f"racer-{number}-results.json"
        command = [sys.executable, "-m", module, str(plan_path), str(results)]
        process = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        started.append((results, process))
    try:
        for _, process in started:
            assert process.stdout is not None
            said = process.stdout.readline()
            assert said == READY, f"a racer did not get ready ({said!r}): see its output above"
        start_at = f"{time.time()}\n".encode()
        for _, process in started:
            assert process.stdin is not None
            process.stdin.write(start_at)
            process.stdin.close()
        for _, process in started:
            assert process.wait(timeout=timeout) == 0, "a racer failed: see its output above"
    finally:
        for _, process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()
    return [json.loads(results.read_text()) for results, _ in started]


async def wait_for_start() -> float:
    """In a racer: say it is ready, then wait for the start; return the start time (epoch)."""
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    line = await asyncio.to_thread(sys.stdin.readline)
    return float(line)


def create_for_race(base_url: str, count: int, passphrase: str) -> list[dict[str, str]]:
    """Create `count` secrets over REST; return each one's keys, as a racer plan lists them."""
    secrets = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for number in range(count):
            body = {"secret": f"raced {number}", "passphrase": passphrase}
            created = http.post("/generate", json=body).json()
            secrets.append(
                {
                    "key": created["secret_key"],
                    "receipt_key": created["receipt_key"],
                    "passphrase": passphrase,
                }
            )
    return secrets
