"""Fixtures for fault tests: a private PostgreSQL server and uvicorn subprocesses.

The PostgreSQL server is initialised into a temporary directory and listens on a free port, so
stopping, freezing or restarting it harms nothing else. `initdb` refuses to run as root, so
when the tests run as root the server runs as the `postgres` OS user. When `CI=true`, failing
to start it fails the tests instead of skipping them.
"""

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import psutil
import pytest

from tests.clocks import PATIENCE_SECONDS, eventually
from tests.conftest import IN_CI, TEST_ENV
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
PG_OS_USER = "postgres"
READY_TIMEOUT_SECONDS = PATIENCE_SECONDS


def _pg_bin_dir() -> Path | None:
    configured = os.environ.get("PG_BIN_DIR")
    if configured:
        return Path(configured)
    debian = Path("/usr/lib/postgresql/15/bin")
    if (debian / "initdb").exists():
        return debian
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, children of children included; none if `pid` is gone."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


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


def _cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


class PrivatePostgres:
    """A throw-away PostgreSQL cluster the tests may stop, freeze and restart at will."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = free_port()
        self.admin_dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", PG_OS_USER, "--", *command]
        completed = subprocess.run(  # noqa: S603 - fixed programs, arguments built here
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({completed.returncode}): {completed.stderr.strip()}"
            )

    def init(self) -> None:
        """Create the cluster with trust authentication for local TCP connections."""
        if os.geteuid() == 0:
            account = pwd.getpwnam(PG_OS_USER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.root}",
                "-c listen_addresses=127.0.0.1",
                "-c max_connections=200",
                # Durability of the server itself is not under test; speed is welcome.
                "-c fsync=off",
                "-c full_page_writes=off",
            ]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
                  "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast` closes sessions cleanly, `immediate` is a crash)."""
        self.thaw()
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    @property
    def running(self) -> bool:
        """Whether the postmaster is alive."""
        pid = self._postmaster_pid()
        return pid is not None and psutil.pid_exists(pid)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _server_pids(self) -> list[int]:
        pid = self._postmaster_pid()
        return [] if pid is None else [pid, *_descendants(pid)]

    def freeze(self) -> None:
        """SIGSTOP every server process: the port still accepts TCP, but nothing answers."""
        postmaster = self._postmaster_pid()
        assert postmaster is not None, "the private PostgreSQL server is not running"
        # The postmaster first, so it forks no backend while its children are listed; a
        # backend whose session just closed may exit before its signal, and needs none.
        os.kill(postmaster, signal.SIGSTOP)
        for pid in _descendants(postmaster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Undo `freeze`."""
        for pid in self._server_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def ensure_running(self) -> None:
        """Thaw or start the server, whatever a previous test left behind."""
        self.thaw()
        if not self.running:
            self.start()

    async def connect(self, database: str = "postgres") -> asyncpg.Connection:
        """Open an administrative connection to `database`."""
        dsn = self.admin_dsn.rsplit("/", 1)[0] + f"/{database}"
        return await asyncpg.connect(dsn, timeout=10)

    async def create_database(self) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = f"faults_{uuid.uuid4().hex[:12]}"
        admin = await self.connect()
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    async def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database`, closing its leftover connections."""
        admin = await self.connect()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()


def _require_private_postgres(problem: str) -> NoReturn:
    message = f"cannot run a private PostgreSQL server for the fault tests ({problem})"
    if IN_CI:
        pytest.fail(message + "; these tests are mandatory when CI=true")
    pytest.skip(message)


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test run, in its own directory and on its own port."""
    bin_dir = _pg_bin_dir()
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


class Uvicorn:
    """`uvicorn main:app` in a subprocess, on a free port, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *, workers: int = 1) -> None:
        self.env = env
        self.log_path = log_path
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int:
        """The pid of the uvicorn main process."""
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        """Start the process and wait until every worker has completed its start-up."""
        command = [
            sys.executable, "-m", "uvicorn", "main:app",
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
        ]  # fmt: skip
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and app
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Block until the workers report start-up complete and `/healthz` answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}:\n{self.log()}")
            if self.log(since_start=True).count("Application startup complete.") >= self.workers:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                        return
            time.sleep(0.05)
        raise RuntimeError(f"uvicorn did not become ready in {timeout} s:\n{self.log()}")

    def log(self, *, since_start: bool = False) -> str:
        """The process's output so far (or since the last `start`)."""
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        return data[self._log_offset if since_start else 0 :].decode(errors="replace")

    def worker_pids(self) -> list[int]:
        """The pids of the worker processes (the main process itself with one worker)."""
        if self.workers == 1:
            return [self.pid]
        children = psutil.Process(self.pid).children()
        return [child.pid for child in children if "spawn_main" in _cmdline(child.pid)]

    def terminate(self) -> None:
        """Send SIGTERM: uvicorn stops accepting and finishes the requests in flight."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit and return its exit code."""
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """Stop gracefully; kill if that takes longer than `timeout` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # Workers of a killed supervisor would linger; the group shares their fate.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


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
        server = Uvicorn(env, tmp_path / f"uvicorn-{len(started)}.log", workers=workers)
        started.append(server)
        server.start()
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
