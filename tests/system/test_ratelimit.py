"""Rate limits with processes: a private Redis goes away and comes back; two uvicorn processes
share one count through Redis.

The in-process tests, and the helpers used here, are in tests/api/test_ratelimit.py.
"""

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import limits.aio.storage.memory
import limits.aio.strategies
import pytest
from fastapi import FastAPI

from api.access import rate_limits
from harness.redis_server import RedisServer, redis_installed
from tests.api.test_ratelimit import (
    PASSPHRASE,
    REDIS_URL,
    SECRET,
    client_from,
    create,
    delete_redis_keys,
    require_redis,
    skip_or_fail,
)
from tests.clocks import PATIENCE_SECONDS, FakeClock
from tests.system.servers import run_server


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test alone, so counts never leak between tests or runs."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def patient_storage(configure: Any) -> None:
    """Give Redis as long as any machine needs to answer (tests/api/test_ratelimit.py says why)."""
    configure(RATE_LIMIT_STORAGE_TIMEOUT_SECONDS=str(PATIENCE_SECONDS))


@pytest.fixture
async def redis_prefix(prefix: str) -> AsyncIterator[str]:
    """`prefix`, in the shared Redis (which must answer); its keys are deleted after the test."""
    await require_redis()
    yield prefix
    await delete_redis_keys(prefix)


def _count_storage_asked(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """Note every time the limiter asks its configured storage (not its local fallback)."""
    asked: list[None] = []
    spend = rate_limits._spend

    async def counting(strategy: Any, *args: Any) -> rate_limits.Verdict:
        if not isinstance(strategy.storage, limits.aio.storage.memory.MemoryStorage):
            asked.append(None)
        return await spend(strategy, *args)

    monkeypatch.setattr(rate_limits, "_spend", counting)
    return asked


@pytest.mark.usefixtures("patient_storage")
async def test_redis_outage_degrades_to_per_process_limits_and_recovers(
    app: FastAPI,
    configure: Any,
    prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeClock,
) -> None:
    """Fail-open to this process's memory: never a 5xx, never unlimited, back when Redis is."""
    if not redis_installed():
        skip_or_fail("redis-server is not installed")
    private = RedisServer(tmp_path)
    port = private.port
    configure(
        RATE_LIMIT_CREATE="3/minute",
        RATE_LIMIT_STORAGE_URL=private.url,
        RATE_LIMIT_KEY_PREFIX=prefix,
    )
    asked = _count_storage_asked(monkeypatch)
    caplog.set_level(logging.INFO, logger=rate_limits.logger.name)
    async with client_from(app, "198.51.100.9") as http:
        with private.running():
            assert (await create(http)).status_code == 200
            assert (await create(http)).status_code == 200
        # Redis is gone: counted in this process alone. The first request found out; the
        # others do not wait on the missing Redis, they do not even ask it.
        asked_before = len(asked)
        statuses = [(await create(http)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert len(asked) == asked_before + 1
        failures = [r for r in caplog.records if "storage failed" in r.getMessage()]
        assert len(failures) == 1, "one warning per outage, not one per request"
        assert str(port) not in failures[0].getMessage()

        with private.running():
            # Redis is asked again only STORAGE_RETRY_SECONDS after it failed.
            clock.advance(rate_limits.STORAGE_RETRY_SECONDS - 1)
            assert (await create(http)).status_code == 429  # still the local count
            assert len(asked) == asked_before + 1
            clock.advance(1)
            # Shared counting resumes in the new (empty) Redis.
            assert [(await create(http)).status_code for _ in range(4)] == [
                200,
                200,
                200,
                429,
            ]
            assert len(asked) == asked_before + 5
            assert any("answers again" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- several processes -------------------------------------------------------------------


async def test_two_processes_share_one_count_through_redis(
    redis_prefix: str, tmp_path: Path
) -> None:
    env = {
        "RATE_LIMIT_CREATE": "5/hour",
        "RATE_LIMIT_REVEAL": "4/hour",
        "RATE_LIMIT_STORAGE_URL": REDIS_URL,
        "RATE_LIMIT_KEY_PREFIX": redis_prefix,
        "METRICS": "false",
    }
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                run_server(
                    env | {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/{n}.db"},
                    extra_args=("--no-proxy-headers", "--log-level", "warning"),
                )
            )
            for n in range(2)
        ]
        bases = [server.url for server in servers]
        async with httpx.AsyncClient(timeout=PATIENCE_SECONDS) as http:
            body = {"secret": SECRET, "passphrase": PASSPHRASE}
            creates = [await http.post(f"{bases[n % 2]}/generate", json=body) for n in range(10)]
            assert [r.status_code for r in creates] == [200] * 5 + [429] * 5
            assert {int(r.headers["retry-after"]) for r in creates[5:]} <= set(range(1, 3601))

            key = "0" * 32
            reveal = 'mutation { revealSecret(secretKey: "%s", passphrase: "x") { __typename } }'
            spend = [
                http.post(f"{bases[0]}/secrets/{key}", json={"passphrase": "x"}),
                http.post(f"{bases[1]}/graphql", json={"query": reveal % key}),
                http.delete(f"{bases[0]}/secrets/{key}", params={"passphrase": "x"}),
                http.get(f"{bases[1]}/secrets/{key}", params={"passphrase": "x"}),
                http.post(f"{bases[0]}/graphql", json={"query": reveal % key}),
            ]
            statuses = [(await request).status_code for request in spend]
            assert statuses == [404, 200, 404, 404, 429]
    assert all(server.process.returncode is not None for server in servers)
