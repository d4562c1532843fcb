"""Scenario 1, the ceiling: argon2id hash + verify pairs per second on all cores.

The parameters are the service's own (read from its settings), each pair is exactly what the
service runs for a create and a reveal (`api.domain.hashing.protect` then `unlock`), and the
work runs in one process per core so nothing but argon2 competes for the CPUs.
"""

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import psutil

from api.domain.hashing import Argon2Parameters, protect, unlock
from bench.procs import CpuMeter

PASSPHRASE = "correct horse battery staple"  # noqa: S105  (a benchmark fixture)


def _pairs_until(deadline_epoch: float, start_epoch: float, params: tuple[int, int, int]) -> int:
    parameters = Argon2Parameters(*params)
    protect(PASSPHRASE, parameters)
    while time.time() < start_epoch:
        time.sleep(0.001)
    pairs = 0
    while time.time() < deadline_epoch:
        record = protect(PASSPHRASE, parameters).record
        unlock(PASSPHRASE, record)
        pairs += 1
    return pairs


def single_core_costs(params: tuple[int, int, int], rounds: int = 20) -> dict[str, float]:
    """Mean milliseconds of one hash and of one verify on one otherwise idle core."""
    parameters = Argon2Parameters(*params)
    record = protect(PASSPHRASE, parameters).record
    started = time.perf_counter()
    for _ in range(rounds):
        record = protect(PASSPHRASE, parameters).record
    hash_ms = (time.perf_counter() - started) / rounds * 1000
    started = time.perf_counter()
    for _ in range(rounds):
        unlock(PASSPHRASE, record)
    verify_ms = (time.perf_counter() - started) / rounds * 1000
    return {"hash_ms": hash_ms, "verify_ms": verify_ms}


def measure(params: tuple[int, int, int], seconds: float) -> dict[str, Any]:
    """Run hash + verify pairs on every core for `seconds`; return the rate and the details."""
    cores = os.cpu_count() or 1
    costs = single_core_costs(params)
    start = time.time() + 2.0
    deadline = start + seconds
    with ProcessPoolExecutor(max_workers=cores, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_pairs_until, deadline, start, params) for _ in range(cores)]
        time.sleep(max(start - time.time(), 0.0))
        meter = CpuMeter({"argon2 processes": [child.pid for child in psutil.Process().children()]})
        meter.start()
        time.sleep(max(deadline - time.time(), 0.0))
        cpu = meter.stop()
        pairs = sum(future.result() for future in futures)
    predicted = cores / ((costs["hash_ms"] + costs["verify_ms"]) / 1000)
    return {
        "cores": cores,
        "seconds": seconds,
        "pairs": pairs,
        "pairs_per_second": pairs / seconds,
        "predicted_pairs_per_second": predicted,
        "other_processes_share": cpu["other processes"] / (seconds * cores),
        **costs,
    }
