"""Database down: answers stay fast and clean while PostgreSQL is away, and come back after it.

Both doors answer an outage the same way: HTTP 503 with `Retry-After`. REST's body is
`{"detail": …}`; GraphQL's has `data: null` and one error whose `extensions.code` is
`SERVICE_UNAVAILABLE` with `retryAfterSeconds`, never the masked `Unexpected error.` of a
failure in the service's own code.

"Quickly" is judged against what waiting would cost, not against a stopwatch tuned to one
machine: every answer must come within `ANSWER_WITHIN_SECONDS`, four times the service's own
bounds, and well before the clients' 30 s, which a request without a bound would run into.
How long the answers actually took is printed (`report`).
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pytest

from harness.postgres_cluster import PrivatePostgres
from tests.clocks import PATIENCE_SECONDS, eventually
from tests.system.faults.client import (
    SERVICE_UNAVAILABLE_CODE,
    HttpClient,
    Outcome,
    create,
    latency_summary,
    leaks,
    ready,
    reveal,
)
from tests.system.faults.conftest import StartService, report, service_env, wait_for_lock_waiters

pytestmark = pytest.mark.faults

POOL_SIZE = 5
POOL_TIMEOUT = 2.0
# A request may first wait this long for a hashing slot (the production default), then for
# the database: the bound on an answer is the sum of the two, plus a second.
QUEUE_TIMEOUT = 1.0
# The service bounds every wait by the two above; a request that waited without a bound would
# hang until the client gives up (30 s) and count as `failed`.
ANSWER_WITHIN_SECONDS = 4 * (POOL_TIMEOUT + QUEUE_TIMEOUT)
PASSPHRASE = "correct horse"
KEPT = "kept through the outage"


def _assert_clean_unavailable(name: str, outcome: Outcome) -> None:
    # `kind == "unavailable"` already means 503 with Retry-After and, over GraphQL, only
    # SERVICE_UNAVAILABLE errors (see `tests.system.faults.client`); the body is checked here.
    assert outcome.kind == "unavailable", (name, outcome)
    assert not leaks(outcome.body), (name, outcome.body)
    assert outcome.retry_after is not None
    assert outcome.retry_after.isdigit(), (name, outcome)
    document = json.loads(outcome.body)
    if "graphql" not in name:
        assert set(document) == {"detail"}, (name, document)
        assert isinstance(document["detail"], str)
        return
    assert document["data"] is None, (name, document)
    [error] = document["errors"]
    assert error["extensions"] == {
        "code": SERVICE_UNAVAILABLE_CODE,
        "retryAfterSeconds": int(outcome.retry_after),
    }, (name, error)
    assert error["path"] in (["revealSecret"], ["createSecret"]), (name, error)


async def _outage_calls(
    http: HttpClient, keys: list[str], *, one_by_one: bool
) -> dict[str, Outcome]:
    calls: dict[str, Callable[[], Awaitable[Outcome]]] = {
        "rest_generate": lambda: create(http, "new secret", PASSPHRASE),
        "rest_reveal_get": lambda: reveal(http, "rest-get", keys[0], PASSPHRASE),
        "rest_reveal_post": lambda: reveal(http, "rest-post", keys[1], PASSPHRASE),
        "readyz": lambda: ready(http),
        "graphql_reveal": lambda: reveal(http, "graphql", keys[2], PASSPHRASE),
        "graphql_create": lambda: create(http, "new secret", PASSPHRASE, graphql=True),
    }
    outcomes = {name: await call() for name, call in calls.items()} if one_by_one else {}
    # And a burst of all of them at once, more than the pool holds. Each keeps its call's
    # name, which tells the checks which door answered.
    burst = [(f"burst_{name}_{n}", call) for name, call in calls.items() for n in range(4)]
    answers = await asyncio.gather(*(call() for _, call in burst))
    outcomes.update(zip((name for name, _ in burst), answers, strict=True))
    return outcomes


async def _wait_until_ready(http: HttpClient) -> float:
    """Wait until /readyz answers again, with no restart of the service; return how long."""
    started = time.monotonic()

    async def answers() -> bool:
        return (await ready(http)).kind == "ok"

    await eventually(answers, "the service ready again", patience=PATIENCE_SECONDS)
    return time.monotonic() - started


async def _each_reveals_once(http: HttpClient, keys: list[str]) -> None:
    for key in keys:
        first = await reveal(http, "rest-post", key, PASSPHRASE)
        assert first.kind == "ok", first
        assert first.value == KEPT
        assert (await reveal(http, "rest-post", key, PASSPHRASE)).kind == "not_found"


async def _create_kept(http: HttpClient, count: int) -> list[str]:
    keys = []
    for _ in range(count):
        created = await create(http, KEPT, PASSPHRASE)
        assert created.kind == "ok", created
        assert created.value is not None
        keys.append(created.value)
    return keys


@pytest.mark.parametrize("stop_mode", ["fast", "immediate"])
async def test_stopped_database_gives_503_quickly_then_recovers(
    private_pg: PrivatePostgres, pg_url: str, start_service: StartService, stop_mode: str
) -> None:
    service = start_service(
        service_env(
            pg_url,
            DB_POOL_SIZE=str(POOL_SIZE),
            DB_POOL_TIMEOUT_SECONDS=str(POOL_TIMEOUT),
            # The production default. A reveal holds its hashing slot while it claims an
            # attempt (so that a refusal changes nothing), so with the database frozen the
            # requests queued behind it wait at most this, then are refused (also 503).
            HASH_QUEUE_TIMEOUT_SECONDS=str(QUEUE_TIMEOUT),
        )
    )
    http = HttpClient(service.url)
    keys = await _create_kept(http, 4)
    # Fill the pool with connections that the outage will break.
    await asyncio.gather(*(ready(http) for _ in range(POOL_SIZE * 2)))

    private_pg.stop(stop_mode)
    outcomes = await _outage_calls(http, keys, one_by_one=True)
    for name, outcome in outcomes.items():
        _assert_clean_unavailable(name, outcome)
        assert outcome.seconds <= ANSWER_WITHIN_SECONDS, (name, outcome)

    private_pg.start()
    recovery = await _wait_until_ready(http)

    # Nothing was lost: every secret tried during the outage reveals once now.
    await _each_reveals_once(http, keys)
    assert (await create(http, "after", PASSPHRASE)).kind == "ok"

    report(
        f"database stopped ({stop_mode})",
        pool_timeout_s=POOL_TIMEOUT,
        answer_within_s=ANSWER_WITHIN_SECONDS,
        requests=len(outcomes),
        statuses=sorted({f"{o.status}" for o in outcomes.values()}),
        recovery_after_restart_s=round(recovery, 3),
        **latency_summary(list(outcomes.values())),
    )


async def test_frozen_database_gives_503_without_hanging_then_recovers(
    private_pg: PrivatePostgres, pg_url: str, start_service: StartService
) -> None:
    """A server that accepts TCP but never answers: the hardest outage to notice.

    Every wait is bounded: for a connection, a new one included (half of
    DB_POOL_TIMEOUT_SECONDS), and for each statement (DB_POOL_TIMEOUT_SECONDS). A statement
    that timed out has its connection cut off at once, not closed politely.
    """
    service = start_service(
        service_env(
            pg_url,
            DB_POOL_SIZE=str(POOL_SIZE),
            DB_POOL_TIMEOUT_SECONDS=str(POOL_TIMEOUT),
            # The production default. A reveal holds its hashing slot while it claims an
            # attempt (so that a refusal changes nothing), so with the database frozen the
            # requests queued behind it wait at most this, then are refused (also 503).
            HASH_QUEUE_TIMEOUT_SECONDS=str(QUEUE_TIMEOUT),
        )
    )
    http = HttpClient(service.url)
    keys = await _create_kept(http, 4)
    await asyncio.gather(*(ready(http) for _ in range(POOL_SIZE * 2)))

    # A reveal already inside the database (waiting on a lock) when it freezes.
    locker = await private_pg.connect(pg_url.rsplit("/", 1)[1])
    transaction = locker.transaction()
    await transaction.start()
    await locker.execute("LOCK TABLE secrets IN EXCLUSIVE MODE")
    in_flight = asyncio.create_task(reveal(http, "rest-post", keys[3], PASSPHRASE))
    watcher = await private_pg.connect(pg_url.rsplit("/", 1)[1])
    try:
        await wait_for_lock_waiters(watcher, pg_url.rsplit("/", 1)[1], 1)
    finally:
        await watcher.close()
    private_pg.freeze()
    try:
        outcomes = await _outage_calls(http, keys, one_by_one=False)
        outcomes["in_flight_reveal"] = await in_flight
    finally:
        private_pg.thaw()
    await transaction.rollback()
    await locker.close()
    for name, outcome in outcomes.items():
        _assert_clean_unavailable(name, outcome)
        assert outcome.seconds <= ANSWER_WITHIN_SECONDS, (name, outcome)

    recovery = await _wait_until_ready(http)
    await _each_reveals_once(http, keys)

    report(
        "database frozen (SIGSTOP)",
        pool_timeout_s=POOL_TIMEOUT,
        requests=len(outcomes),
        recovery_after_thaw_s=round(recovery, 3),
        **latency_summary(list(outcomes.values())),
    )
