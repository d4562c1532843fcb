"""Crash: `kill -9` of a worker in the middle of creates and reveals; uvicorn restarts it.

The client keeps a ledger of everything it was told. Afterwards no secret was revealed
twice, and every secret the client was told was created is revealed once, still revealable
exactly once, or expired. A reveal that got no answer (the worker died under it) may have
consumed its secret or not; either is fine, as long as it is not both.

Every step waits for what it needs, never for a while: the kill waits for the load to be
under way and for requests to be waiting in the database, the lock is released once the
worker is gone, the load stops after a number of requests served by the new worker, and
the audit waits until the database says the short-lived secrets have expired.
"""

import asyncio
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import psutil
import pytest

from api.domain import crypto
from harness.postgres_cluster import PrivatePostgres
from harness.uvicorn import Uvicorn
from tests.clocks import eventually
from tests.system.faults.client import REVEAL_TRANSPORTS, HttpClient, Outcome, create, reveal
from tests.system.faults.conftest import StartService, report, service_env, tcp_local_ports

pytestmark = pytest.mark.faults

# The kill comes once this many secrets were created; the load then goes on for this many
# requests after the new worker is ready.
KILL_AFTER_CREATED = 20
REQUESTS_AFTER_RESTART = 100
CONCURRENCY = 16
SHORT_TTL = 2
LONG_TTL = 3600
PASSPHRASE = "crash passphrase"


@dataclass
class Entry:
    """What the client knows about one secret it was told was created."""

    value: str
    ttl: int
    reveals: list[Outcome] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(outcome.kind == kind for outcome in self.reveals)


@dataclass
class Ledger:
    entries: dict[str, Entry] = field(default_factory=dict)
    creates: Counter[str] = field(default_factory=Counter)
    reveals: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return self.creates.total() + self.reveals.total()


async def _client_loop(http: HttpClient, ledger: Ledger, stop: asyncio.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        if not ledger.entries or rng.random() < 0.4:
            ttl = SHORT_TTL if rng.random() < 0.2 else LONG_TTL
            value = f"crash secret {seed}-{rng.random()}"
            outcome = await create(
                http, value, PASSPHRASE, graphql=rng.random() < 0.3, ttl_seconds=ttl
            )
            ledger.creates[outcome.kind] += 1
            if outcome.kind == "ok":
                assert outcome.value is not None
                ledger.entries[outcome.value] = Entry(value, ttl)
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


def _gone(pid: int) -> bool:
    """Whether process `pid` has died (a zombie not yet reaped counts as dead)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _kill_busiest_worker(
    service: Uvicorn, private_pg: PrivatePostgres, database: str, ledger: Ledger
) -> dict[str, Any]:
    """Kill -9 the worker with the most requests inside the database; wait for its successor.

    A lock on the secrets table holds the requests in flight until the worker is dead, so
    the kill is sure to cut some off: creates before their INSERT, reveals before their claim
    or between their claim and their DELETE.
    """

    async def under_way() -> bool:
        return ledger.creates["ok"] >= KILL_AFTER_CREATED

    await eventually(under_way, "the load under way")
    locker = await private_pg.connect(database)
    watcher = await private_pg.connect(database)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE secrets IN EXCLUSIVE MODE")

        async def held_up() -> list[int] | None:
            ports = await _lock_waiters(watcher, database)
            return ports if len(ports) >= CONCURRENCY // 2 else None

        ports = await eventually(held_up, "requests waiting in the database")
        waiting = {pid: len(tcp_local_ports(pid) & set(ports)) for pid in service.worker_pids()}
        victim = max(waiting, key=lambda pid: waiting[pid])
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()

        async def dead() -> bool:
            return _gone(victim)

        await eventually(dead, "the killed worker gone")
        await transaction.rollback()
    finally:
        await locker.close()
        await watcher.close()

    # The uvicorn supervisor notices the dead worker and starts another one.
    spawned: float | None = None

    async def successor_ready() -> bool:
        nonlocal spawned
        workers = service.worker_pids()
        if spawned is None and victim not in workers and len(workers) == service.workers:
            spawned = time.monotonic() - killed_at
        started = service.startups_logged()
        return spawned is not None and started > service.workers

    await eventually(successor_ready, "a new worker in place of the killed one")
    assert spawned is not None
    return {
        "requests_waiting_in_db_per_worker": sorted(waiting.values()),
        "new_worker_spawned_s": round(spawned, 2),
        "new_worker_ready_s": round(time.monotonic() - killed_at, 2),
    }


async def _until_expired(private_pg: PrivatePostgres, database: str, keys: list[str]) -> None:
    """Wait until none of `keys` is stored unexpired, by the clock the service reads."""
    observer = await private_pg.connect(database)
    try:

        async def expired() -> bool:
            left = await observer.fetchval(
                "SELECT count(*) FROM secrets WHERE lookup_hash = ANY($1) AND expires_at > $2",
                [crypto.lookup_hash(key) for key in keys],
                datetime.now(UTC),
            )
            return int(left) == 0

        await eventually(expired, "the short-lived secrets expired")
    finally:
        await observer.close()


async def test_kill_9_of_a_worker_loses_nothing_and_reveals_nothing_twice(
    private_pg: PrivatePostgres, pg_url: str, start_service: StartService
) -> None:
    service = start_service(service_env(pg_url, MIN_TTL_SECONDS="1"), workers=2)
    http = HttpClient(service.url)
    ledger = Ledger()

    database = pg_url.rsplit("/", 1)[1]
    stop = asyncio.Event()
    load = [
        asyncio.create_task(_client_loop(http, ledger, stop, seed)) for seed in range(CONCURRENCY)
    ]
    try:
        kill = await _kill_busiest_worker(service, private_pg, database, ledger)
        # The load goes on while the supervisor starts a new worker, and after.
        enough = ledger.requests + REQUESTS_AFTER_RESTART

        async def served_after() -> bool:
            return ledger.requests >= enough

        await eventually(served_after, "requests served after the restart")
    finally:
        stop.set()
        await asyncio.gather(*load)

    # Now audit every secret the client was told about, once the short-lived ones expired.
    short = [key for key, entry in ledger.entries.items() if entry.ttl == SHORT_TTL]
    await _until_expired(private_pg, database, short)

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
        requests=ledger.requests,
        **kill,
        creates=dict(ledger.creates),
        reveals=dict(ledger.reveals),
        secrets_in_ledger=len(ledger.entries),
        audit=dict(audit),
    )
