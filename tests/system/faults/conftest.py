"""Fixtures for fault tests: a private PostgreSQL server and uvicorn subprocesses.

The PostgreSQL server (`harness.postgres_cluster`) is initialised into a temporary directory
and listens on a free port, so stopping, freezing or restarting it harms nothing else. When
`CI=true`, failing to start it fails the tests instead of skipping them.
"""

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import psutil
import pytest

from harness import postgres_cluster
from harness.postgres_cluster import PrivatePostgres
from harness.uvicorn import Uvicorn
from tests.clocks import PATIENCE_SECONDS, eventually
from tests.conftest import IN_CI, TEST_ENV


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time that process `pid` has used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def tcp_local_ports(pid: int) -> set[int]:
    """The local ports of the TCP sockets (IPv4 and IPv6) that process `pid` holds open."""
    process = psutil.Process(pid)
    # psutil 6 renamed `connections` to `net_connections` and deprecates the old name (a
    # warning is an error here); the project still allows psutil 5.9, which has only that.
    connections = getattr(process, "net_connections", None) or process.connections
    return {connection.laddr.port for connection in connections(kind="tcp")}


def _require_private_postgres(problem: str) -> NoReturn:
    message = f"cannot run a private PostgreSQL server for the fault tests ({problem})"
    if IN_CI:
        pytest.fail(message + "; these tests are mandatory when CI=true")
    pytest.skip(message)


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test run, in its own directory and on its own port."""
    bin_dir = postgres_cluster.bin_dir()
    if bin_dir is None:
        _require_private_postgres("initdb not found; set PG_BIN_DIR")
    # Not pytest's tmp_path: its parents are private to the current user, and the server
    # may have to run as another one.
    root = Path(tempfile.mkdtemp(prefix="ots-faults-pg-"))
    server = PrivatePostgres(bin_dir, root)
    try:
        server.init()
        server.start()
    except (OSError, RuntimeError, subprocess.TimeoutExpired, KeyError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        _require_private_postgres(f"{type(exc).__name__}: {exc}")
    yield server
    with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
        server.stop("immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def pg_url(private_pg: PrivatePostgres) -> AsyncIterator[str]:
    """A fresh, empty database on the running private server; dropped after the test."""
    private_pg.ensure_running()
    url = await private_pg.create_database()
    yield url
    private_pg.ensure_running()
    await private_pg.drop_database(url)


def service_env(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a service subprocess: the test settings plus `overrides`."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(TEST_ENV)
    env.update(
        {
            "DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
            "GRAPHIQL": "false",
        }
    )
    env.update(overrides)
    return env


StartService = Callable[..., Uvicorn]


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether the test itself failed, for `start_service` to show the logs."""
    test_report = yield
    if test_report.when == "call":
        item.stash[_CALL_FAILED] = test_report.failed
    return test_report


@pytest.fixture
def start_service(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StartService]:
    """Start `uvicorn main:app` subprocesses: `start_service(env, workers=2)`.

    Every process started here is stopped after the test; its output is shown on failure.
    """
    started: list[Uvicorn] = []

    def start(env: dict[str, str], *, workers: int = 1) -> Uvicorn:
        log = tmp_path / f"uvicorn-{len(started)}.log"
        server = Uvicorn(env, log, workers=workers, options=("--no-access-log",))
        started.append(server)
        server.start()
        # Every worker's start-up done, not only the first one's (the socket is shared).
        server.wait_ready(
            lambda: server.startups_logged() >= workers and server.answers("/healthz"),
            timeout=PATIENCE_SECONDS,
        )
        return server

    yield start
    for server in started:
        server.stop(timeout=10)
        if request.node.stash.get(_CALL_FAILED, True):
            print(f"--- uvicorn on port {server.port}, last output:\n{server.log()[-5000:]}")


async def wait_for_lock_waiters(watcher: asyncpg.Connection, database: str, count: int) -> None:
    """Wait until `count` sessions on `database` wait for a lock: requests provably inside.

    `watcher` must not be inside a transaction: pg_stat_activity would stay the snapshot
    taken at its first read.
    """

    async def waiting() -> bool:
        found = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            database,
        )
        return int(found) >= count

    await eventually(waiting, f"{count} requests waiting for a lock in the database")


def report(title: str, **figures: Any) -> None:
    """Print the figures a test measured, one JSON line, for SECURITY.md."""
    print(f"FIGURES {title}: {json.dumps(figures, sort_keys=True, default=str)}")
