"""Racer processes: client processes that start together once every one of them is ready.

A racer is a module run as `python -m MODULE PLAN RESULTS` (`tests.system.receipt_racer`,
`tests.system.create_racer`, `tests.system.faults.racer`); `run_racers` starts one per plan.
"""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from harness import ROOT

# What a racer process writes when it is ready to start (`run_racers`, `wait_for_start`).
READY = b"ready\n"


def run_racers(
    plans: Sequence[dict[str, Any]],
    directory: Path,
    *,
    timeout: float = 120,
    module: str = "tests.system.receipt_racer",
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
