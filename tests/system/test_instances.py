"""Several instances, one store: three uvicorn instances (two workers each) share a database.

All of them use one PostgreSQL database and one Redis (a private `redis-server`, so the test
may stop it). Reveals of one secret race across instances; the per-address rate limit counts
once across them, and per process while Redis is away; every instance's purge deletes each
expired row once without holding up reveals. When `CI=true`, a missing PostgreSQL or
`redis-server` fails these tests instead of skipping them.
"""

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.redis_server import RedisServer, redis_installed
from harness.uvicorn import Uvicorn
from tests.clocks import PATIENCE_SECONDS, eventually, eventually_sync
from tests.conftest import IN_CI, create_pg_database, drop_pg_database
from tests.system.racing import run_racers
from tests.system.servers import run_server

pytestmark = pytest.mark.postgres

INSTANCES = 3
WORKERS = 2
PASSPHRASE = "instances-passphrase"
# The receipt bucket is the one the rate-limit test spends; the others stay generous. A day's
# window: in Redis it starts at a key's first hit, but a process counting on its own counts in
# windows that start at midnight UTC, which a shorter test could straddle.
RECEIPT_LIMIT = 6
RECEIPT_WINDOW = "day"
RECEIPT_WINDOW_SECONDS = 86_400
UNKNOWN_RECEIPT = "0" * 32
RACE_ROUNDS = 90
EXPIRED_ROWS = 40_000
PURGE_INTERVAL_SECONDS = 0.5


def _require(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(message + "; these tests are mandatory when CI=true")
    pytest.skip(message)


@dataclass
class Cluster:
    """The running instances and what they share."""

    database_url: str
    redis: RedisServer
    servers: list[Uvicorn]

    @property
    def urls(self) -> list[str]:
        """The base URL of each instance."""
        return [server.url for server in self.servers]

    def dsn(self) -> str:
        """The database as asyncpg takes it."""
        return self.database_url.replace("+asyncpg", "", 1)


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """Three instances of two workers on one fresh database and one private Redis."""
    directory = tmp_path_factory.mktemp("instances")
    if not redis_installed():
        _require("redis-server is not installed")
    redis = RedisServer(directory)
    database_url = await create_pg_database()
    prefix = f"instances-{uuid.uuid4().hex[:12]}"
    try:
        redis.start()
        with contextlib.ExitStack() as stack:
            servers = []
            for number in range(INSTANCES):
                env = {
                    "DATABASE_URL": database_url,
                    "SERVER_LOG": str(directory / f"instance-{number}.log"),
                    "LOG_FORMAT": "json",
                    "GRAPHIQL": "false",
                    "RATE_LIMIT_STORAGE_URL": redis.url,
                    "RATE_LIMIT_KEY_PREFIX": prefix,
                    "RATE_LIMIT_RECEIPT": f"{RECEIPT_LIMIT}/{RECEIPT_WINDOW}",
                    # The tests name their clients in X-Forwarded-For, as a proxy would.
                    "TRUSTED_PROXIES": "127.0.0.1",
                    "PURGE_INTERVAL_SECONDS": str(PURGE_INTERVAL_SECONDS),
                    # Each instance's /metrics then sums (or, for gauges, maxes) its workers.
                    "PROMETHEUS_MULTIPROC_DIR": str(directory / f"metrics-{number}"),
                }
                server = run_server(env, workers=WORKERS, extra_args=("--no-proxy-headers",))
                servers.append(stack.enter_context(server))
            yield Cluster(database_url, redis, servers)
    finally:
        redis.stop()
        await drop_pg_database(database_url)


# --- helpers ---------------------------------------------------------------------------


def _create(urls: list[str], count: int) -> list[dict[str, str]]:
    """Create `count` secrets, each through the next instance in turn."""
    secrets = []
    with httpx.Client(timeout=30) as http:
        for number in range(count):
            body = {"secret": f"shared {number}", "passphrase": PASSPHRASE}
            response = http.post(f"{urls[number % len(urls)]}/generate", json=body)
            response.raise_for_status()
            created = response.json()
            secrets.append(
                {
                    "key": created["secret_key"],
                    "receipt_key": created["receipt_key"],
                    "passphrase": PASSPHRASE,
                }
            )
    return secrets


def _log_records(server: Uvicorn) -> list[dict[str, Any]]:
    """The service's own JSON log lines (uvicorn's plain lines are left out)."""
    records = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def _metric(url: str, name: str) -> float:
    """The value of an unlabelled metric (a counter's `_total` sample) on one instance."""
    text = httpx.get(f"{url}/metrics", timeout=PATIENCE_SECONDS).text
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return sum(
                sample.value for sample in family.samples if sample.name in (name, f"{name}_total")
            )
    raise AssertionError(f"{name} is not in /metrics of {url}")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- (a) reveals race across instances ---------------------------------------------------


def test_reveals_of_one_secret_race_across_instances(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One client process per instance reveals every secret at the same planned moment."""
    secrets = _create(cluster.urls, RACE_ROUNDS)
    plans = [
        {
            "url": url,
            "action": "reveal",
            "secrets": secrets,
            "spacing_seconds": 0.03,
        }
        for url in cluster.urls
    ]
    won: dict[str, list[int]] = {secret["key"]: [] for secret in secrets}
    calls: dict[str, list[dict[str, Any]]] = {secret["key"]: [] for secret in secrets}
    for instance, records in enumerate(run_racers(plans, tmp_path)):
        for record in records:
            calls[record["key"]].append(record)
            if record["won"]:
                won[record["key"]].append(instance)
    assert {key: winners for key, winners in won.items() if len(winners) != 1} == {}
    # Raced: every instance had the request before any of them had answered.
    raced = sum(
        max(call["sent_at"] for call in each) < min(call["at"] for call in each)
        for each in calls.values()
    )
    with httpx.Client(timeout=30) as http:
        for number, secret in enumerate(secrets):
            # A client address of its own per look-up: the receipt bucket is small here.
            headers = {"x-forwarded-for": f"198.18.{number // 250}.{number % 250 + 1}"}
            url = f"{cluster.urls[number % INSTANCES]}/receipts/{secret['receipt_key']}"
            receipt = http.get(url, headers=headers).json()
            assert receipt["status"] == "revealed", receipt
    winners_by_instance = Counter(winners[0] for winners in won.values())
    with capsys.disabled():
        print(
            f"\ninstances race: {RACE_ROUNDS} secrets x {INSTANCES} instances, one winner each, "
            f"wins by instance {dict(sorted(winners_by_instance.items()))}, "
            f"all instances had the request at once for {raced}"
        )
    # The race was run: how often, and which instance won, is the machine's doing.
    assert raced > 0, "no secret was in flight at every instance at once"


# --- (c) every instance purges -----------------------------------------------------------

_INSERT_EXPIRED = """
WITH receipts_made AS (
    INSERT INTO receipts (id, lookup_hash, status, failed_attempts, created_at, expires_at,
                          retain_until)
    SELECT gen_random_uuid(), sha256(convert_to($1 || n, 'UTF8')), 'pending', 0, $2, $3, $4
    FROM generate_series(1, $5) AS n
    RETURNING id
)
INSERT INTO secrets (id, lookup_hash, ciphertext, passphrase_hash, failed_attempts, created_at,
                     expires_at, receipt_id)
SELECT gen_random_uuid(), sha256(convert_to(id::text, 'UTF8')), '\\x00'::bytea, 'x', 0, $2, $3, id
FROM receipts_made
"""


REVEALERS = 4


async def _reveal_all(urls: list[str], secrets: list[dict[str, str]]) -> list[tuple[float, float]]:
    """Reveal `secrets`, REVEALERS at a time over the instances; (moment, latency) of each."""
    timings: list[tuple[float, float]] = []

    async def revealer(http: httpx.AsyncClient, first: int) -> None:
        for number, secret in enumerate(secrets[first::REVEALERS]):
            url = f"{urls[(number + first) % len(urls)]}/secrets/{secret['key']}"
            started = time.monotonic()
            response = await http.post(url, json={"passphrase": PASSPHRASE})
            timings.append((started, time.monotonic() - started))
            assert response.status_code == 200, response.text

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(revealer(http, first) for first in range(REVEALERS)))
    return timings


async def test_every_instance_purges_each_expired_row_once_without_stalling_reveals(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bulk-insert expired rows; the six workers purge them while reveals go on."""
    live = _create(cluster.urls, 240)
    purged_before = [_metric(url, "onetime_secrets_secrets_expired_purged") for url in cluster.urls]
    # The same reveals, as many at once, before any expired row exists.
    baseline = [latency for _, latency in await _reveal_all(cluster.urls, live[:40])]
    marker = datetime(2001, 1, 1, tzinfo=UTC)  # created_at of the inserted rows
    observer = await asyncpg.connect(cluster.dsn())
    try:
        now = datetime.now(UTC)
        await observer.execute(
            _INSERT_EXPIRED,
            uuid.uuid4().hex,
            marker,
            now - timedelta(hours=1),
            now + timedelta(days=1),
            EXPIRED_ROWS,
        )
        inserted_at = time.monotonic()
        revealing = asyncio.create_task(_reveal_all(cluster.urls, live[40:]))
        try:
            first_purged_at, done_at, waits, samples = await _watch_purge(observer, marker)
        finally:
            during = await revealing
        rows = await observer.fetch(
            "SELECT status, count(*) FROM receipts WHERE created_at = $1 GROUP BY status", marker
        )
        receipts = {str(row[0]): int(row[1]) for row in rows}
    finally:
        await observer.close()

    assert receipts == {"expired": EXPIRED_ROWS}

    # Each row was deleted (and counted) once: the instances' counts add up to the rows. A
    # round logs its count when it ends, which may be a moment after its last row went.
    def logged() -> list[int]:
        return [
            sum(
                int(record["message"].split()[1])
                for record in _log_records(server)
                if record["message"].startswith("purged ")
            )
            for server in cluster.servers
        ]

    async def all_logged() -> bool:
        return sum(logged()) >= EXPIRED_ROWS

    with contextlib.suppress(AssertionError):  # the exact check below says what is missing
        await eventually(all_logged, "every purged row in the logs")
    purged_by_logs = logged()
    purged_by_metrics = [
        _metric(url, "onetime_secrets_secrets_expired_purged") - before
        for url, before in zip(cluster.urls, purged_before, strict=True)
    ]
    assert sum(purged_by_logs) == EXPIRED_ROWS, purged_by_logs
    assert sum(purged_by_metrics) == EXPIRED_ROWS, purged_by_metrics
    for server in cluster.servers:
        problems = [
            record
            for record in _log_records(server)
            if record["level"] in ("ERROR", "CRITICAL") or "purge failed" in record["message"]
        ]
        assert problems == []
        assert "Traceback" not in server.log()

    in_window = [
        latency for moment, latency in during if first_purged_at - 0.1 <= moment <= done_at
    ]
    figures = {
        "expired_rows": EXPIRED_ROWS,
        "purge_seconds": round(done_at - first_purged_at, 2),
        "purge_started_after_seconds": round(first_purged_at - inserted_at, 2),
        "purged_by_instance": purged_by_logs,
        "samples": samples,
        "lock_waits_seen": dict(waits),
        "baseline_reveal_ms": _latency_figures(baseline),
        "reveals_during_purge": len(in_window),
        "during_purge_reveal_ms": _latency_figures(in_window),
    }
    with capsys.disabled():
        print(f"\ninstances purge: {json.dumps(figures)}")
    # Nothing waited for a row or a table: the purge skips rows another purger holds and
    # touches only expired ones. (`extend`, the brief lock that adds a page to a table, is
    # taken by any writer, and is no queue behind a purge.) Every reveal succeeded. How long
    # they took meanwhile is printed only: that is the benchmark's to judge (scripts/bench,
    # "Reveal p99 during the purge").
    assert {kind: count for kind, count in waits.items() if kind != "extend"} == {}, figures


async def _watch_purge(
    observer: asyncpg.Connection, marker: datetime
) -> tuple[float, float, Counter[str], int]:
    """Poll until the marked rows are gone: when that began and ended, and the lock waits seen.

    The waits are counted by kind (`pg_stat_activity.wait_event` of type `Lock`) per sample.
    """
    waits: Counter[str] = Counter()
    samples = 0
    first_purged_at = None
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        left = await observer.fetchval("SELECT count(*) FROM secrets WHERE created_at = $1", marker)
        rows = await observer.fetch(
            "SELECT wait_event FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        waits.update(str(row[0]) for row in rows)
        samples += 1
        if first_purged_at is None and left < EXPIRED_ROWS:
            first_purged_at = time.monotonic()
        if left == 0:
            assert first_purged_at is not None
            return first_purged_at, time.monotonic(), waits, samples
        await asyncio.sleep(0.01)
    raise AssertionError(f"the purge did not finish in {PATIENCE_SECONDS:g} s")


def _latency_figures(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    return {
        "p50": round(statistics.median(latencies) * 1000, 1),
        "p95": round(_percentile(latencies, 0.95) * 1000, 1),
        "max": round(max(latencies) * 1000, 1),
    }


# --- (b) one rate limit across instances, and per process without Redis ------------------


def _spend_receipts(urls: list[str], client: str, count: int) -> list[int]:
    """Look up an unknown receipt `count` times as `client`, each time at the next instance.

    A new connection each time, so the requests spread over each instance's workers too.
    """
    headers = {"x-forwarded-for": client}
    statuses = []
    with httpx.Client(
        timeout=PATIENCE_SECONDS, limits=httpx.Limits(max_keepalive_connections=0)
    ) as http:
        for number in range(count):
            url = f"{urls[number % len(urls)]}/receipts/{UNKNOWN_RECEIPT}"
            response = http.get(url, headers=headers)
            if response.status_code == 429:
                assert 1 <= int(response.headers["retry-after"]) <= RECEIPT_WINDOW_SECONDS
            statuses.append(response.status_code)
    return statuses


def _local_warnings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        record
        for record in records
        if record["logger"] == "api.access.rate_limits" and "storage failed" in record["message"]
    ]


def _until_shared(urls: list[str], first_client: int) -> None:
    """Send requests (as a new client each round) until no process of any instance counts
    locally: a process asks Redis again only on a request after STORAGE_RETRY_SECONDS.
    """
    clients = iter(range(first_client, first_client + 10_000))

    def shared() -> bool:
        if not any(_metric(url, "onetime_secrets_rate_limits_local") for url in urls):
            return True
        _spend_receipts(urls, f"203.0.114.{next(clients) % 250 + 1}", 2 * len(urls))
        return False

    eventually_sync(shared, "every process counting in Redis again", every=0.2)


def test_rate_limit_is_global_and_becomes_per_process_without_redis(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """N a day is N across all instances; without Redis N per process, never unlimited."""
    urls = cluster.urls
    processes = INSTANCES * WORKERS
    # A loaded machine may have made Redis miss its 0.5 s deadline in an earlier test.
    _until_shared(urls, 0)
    shared = _spend_receipts(urls, "203.0.113.1", 3 * RECEIPT_LIMIT)
    assert shared == [404] * RECEIPT_LIMIT + [429] * (2 * RECEIPT_LIMIT)

    logged_before = [len(_log_records(server)) for server in cluster.servers]
    cluster.redis.stop()
    try:
        outage_started = time.monotonic()
        requests = 10 * RECEIPT_LIMIT
        local = _spend_receipts(urls, "203.0.113.2", requests)
        outage_ended = time.monotonic()
        gauges = [_metric(url, "onetime_secrets_rate_limits_local") for url in urls]
        warnings = [
            _local_warnings(_log_records(server)[before:])
            for server, before in zip(cluster.servers, logged_before, strict=True)
        ]
    finally:
        cluster.redis.start()
    allowed = local.count(404)
    assert set(local) <= {404, 429}, Counter(local)
    # Each process allows the full limit on its own: at least one process per instance was
    # hit often enough to spend it, and no more than every process can have allowed.
    assert INSTANCES * RECEIPT_LIMIT <= allowed <= processes * RECEIPT_LIMIT
    # That no request waits on the missing Redis is tested in-process (test_ratelimit):
    # how long these took is printed only.
    assert gauges == [1.0] * INSTANCES
    for per_instance in warnings:
        # One warning per process that noticed, each saying the limits became local.
        assert 1 <= len(per_instance) <= WORKERS
        for record in per_instance:
            assert record["level"] == "WARNING"
            assert "rate limits are now local" in record["message"]
            assert str(cluster.redis.port) not in record["message"]

    # Redis is back (empty). Each process failed once, on its first request of the outage,
    # and asks again on its first request STORAGE_RETRY_SECONDS later: once every gauge says
    # so, counts are shared again.
    _until_shared(urls, 100)
    recovered = _spend_receipts(urls, "203.0.113.3", 3 * RECEIPT_LIMIT)
    assert recovered == [404] * RECEIPT_LIMIT + [429] * (2 * RECEIPT_LIMIT)
    for server, before in zip(cluster.servers, logged_before, strict=True):
        records = _log_records(server)
        assert any("answers again" in record["message"] for record in records[before:])
        assert [r for r in records if r["level"] in ("ERROR", "CRITICAL")] == []
    with capsys.disabled():
        print(
            f"\ninstances rate limit {RECEIPT_LIMIT}/{RECEIPT_WINDOW}, {INSTANCES} instances x "
            f"{WORKERS} workers: with Redis {shared.count(404)}/{len(shared)} allowed; Redis down "
            f"{allowed}/{requests} allowed (bounds {INSTANCES * RECEIPT_LIMIT}.."
            f"{processes * RECEIPT_LIMIT}) in {outage_ended - outage_started:.2f} s, local "
            f"warnings per instance {[len(w) for w in warnings]}; Redis back "
            f"{recovered.count(404)}/{len(recovered)} allowed"
        )
