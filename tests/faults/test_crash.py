"""Crash: `kill -9` of a worker in the middle of creates and reveals; uvicorn restarts it.

The client keeps a ledger of everything it was told. Afterwards no secret was revealed
twice, and every secret the client was told was created is revealed once, still revealable
exactly once, or expired. A reveal that got no answer (the worker died under it) may have
consumed its secret or not; either is fine, as long as it is not both.
"""

import asyncio
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from tests.faults.client import REVEAL_TRANSPORTS, HttpClient, Outcome, create, reveal
from tests.faults.conftest import (
    PrivatePostgres,
    StartService,
    Uvicorn,
    report,
    service_env,
    tcp_local_ports,
)

pytestmark = pytest.mark.faults

LOAD_SECONDS = 4.0
KILL_AFTER_SECONDS = 1.5
CONCURRENCY = 16
SHORT_TTL = 2
LONG_TTL = 3600
PASSPHRASE = "crash passphrase"


@dataclass
class Entry:
    """What the client knows about one secret it was told was created."""

    value: str
    ttl: int
    created_at: float
    reveals: list[Outcome] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(outcome.kind == kind for outcome in self.reveals)


@dataclass
class Ledger:
    entries: dict[str, Entry] = field(default_factory=dict)
    creates: Counter[str] = field(default_factory=Counter)
    reveals: Counter[str] = field(default_factory=Counter)


async def _client_loop(http: HttpClient, ledger: Ledger, stop_at: float, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        if not ledger.entries or rng.random() < 0.4:
            ttl = SHORT_TTL if rng.random() < 0.2 else LONG_TTL
            value = f"crash secret {seed}-{rng.random()}"
            outcome = await create(
                http, value, PASSPHRASE, graphql=rng.random() < 0.3, ttl_seconds=ttl
            )
            ledger.creates[outcome.kind] += 1
            if outcome.kind == "ok":
                assert outcome.value is not None
                ledger.entries[outcome.value] = Entry(value, ttl, time.monotonic())
        else:
            key = rng.choice(list(ledger.entries))
            outcome = await reveal(http, rng.choice(REVEAL_TRANSPORTS), key, PASSPHRASE)
            ledger.reveals[outcome.kind] += 1
            ledger.entries[key].reveals.append(outcome)


async def _lock_waiters(watcher: asyncpg.Connection, database: str) -> list[int]:
    rows = await watcher.fetch(
        "SELECT client_port FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        database,
    )
    return [row["client_port"] for row in rows]


async def _kill_busiest_worker(
    service: Uvicorn, private_pg: PrivatePostgres, database: str, after: float
) -> dict[str, Any]:
    """Kill -9 the worker with the most requests inside the database; wait for its successor.

    A lock on the secrets table holds the requests in flight for a moment, so the kill is
    sure to cut some off: creates before their INSERT, reveals before their claim or between
    their claim and their DELETE.
    """
    await asyncio.sleep(after)
    locker = await private_pg.connect(database)
    watcher = await private_pg.connect(database)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE secrets IN EXCLUSIVE MODE")
        deadline = time.monotonic() + 5
        while len(ports := await _lock_waiters(watcher, database)) < CONCURRENCY // 2:
            assert time.monotonic() < deadline, "the load never reached the database"
            await asyncio.sleep(0.05)
        waiting = {pid: len(tcp_local_ports(pid) & set(ports)) for pid in service.worker_pids()}
        victim = max(waiting, key=lambda pid: waiting[pid])
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.sleep(0.2)
        await transaction.rollback()
    finally:
        await locker.close()
        await watcher.close()

    # The uvicorn supervisor notices the dead worker and starts another one.
    spawned = None
    while True:
        workers = service.worker_pids()
        if spawned is None and victim not in workers and len(workers) == service.workers:
            spawned = time.monotonic() - killed_at
        started = service.log(since_start=True).count("Application startup complete.")
        if spawned is not None and started > service.workers:
            break
        await asyncio.sleep(0.05)
    return {
        "requests_waiting_in_db_per_worker": sorted(waiting.values()),
        "new_worker_spawned_s": round(spawned, 2),
        "new_worker_ready_s": round(time.monotonic() - killed_at, 2),
    }


async def test_kill_9_of_a_worker_loses_nothing_and_reveals_nothing_twice(
    private_pg: PrivatePostgres, pg_url: str, start_service: StartService
) -> None:
    service = start_service(service_env(pg_url, MIN_TTL_SECONDS="1"), workers=2)
    http = HttpClient(service.url)
    ledger = Ledger()

    stop_at = time.monotonic() + LOAD_SECONDS
    database = pg_url.rsplit("/", 1)[1]
    killer = asyncio.create_task(
        _kill_busiest_worker(service, private_pg, database, KILL_AFTER_SECONDS)
    )
    await asyncio.gather(
        *(_client_loop(http, ledger, stop_at, seed) for seed in range(CONCURRENCY))
    )
    kill = await asyncio.wait_for(killer, 60)

    # The load went on while the supervisor started a new worker; now audit every secret
    # the client was told about.
    latest_short = max(
        (entry.created_at for entry in ledger.entries.values() if entry.ttl == SHORT_TTL),
        default=0.0,
    )
    await asyncio.sleep(max(0.0, latest_short + SHORT_TTL + 0.5 - time.monotonic()))

    audit: Counter[str] = Counter()
    for key, entry in ledger.entries.items():
        assert entry.count("ok") <= 1, (key, entry)
        assert entry.count("unexpected") == 0, (key, entry)
        now = await reveal(http, "rest-post", key, PASSPHRASE)
        assert now.kind in ("ok", "not_found"), now
        if now.kind == "ok":
            # Still there: nobody got it, and nobody was told it was gone.
            assert now.value == entry.value
            assert entry.count("ok") == 0, (key, entry)
            assert entry.count("not_found") == 0, (key, entry)
            assert entry.ttl == LONG_TTL
            assert (await reveal(http, "rest-post", key, PASSPHRASE)).kind == "not_found"
            audit["still revealable once"] += 1
        elif entry.count("ok") == 1:
            audit["revealed once"] += 1
        elif entry.ttl == SHORT_TTL:
            audit["expired"] += 1
        else:
            # Gone without a success: only a reveal that died with the worker may explain it.
            assert entry.count("failed") + entry.count("unavailable") > 0, (key, entry)
            audit["consumed by a reveal cut off by the crash"] += 1

    assert ledger.reveals["failed"] + ledger.creates["failed"] > 0, "the kill hit nothing"
    report(
        "kill -9 of a worker",
        load_s=LOAD_SECONDS,
        **kill,
        creates=dict(ledger.creates),
        reveals=dict(ledger.reveals),
        secrets_in_ledger=len(ledger.entries),
        audit=dict(audit),
    )
