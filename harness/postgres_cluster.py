"""A throw-away PostgreSQL cluster, initialised in a directory of its own on a free port.

Stopping, freezing or restarting it harms nothing else. `initdb` refuses to run as root, so
when the caller is root the server runs as the `postgres` OS user.
"""

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import asyncpg
import psutil

from harness import postgres
from harness.ports import free_port

PG_OS_USER = "postgres"


def bin_dir() -> Path | None:
    """Where `initdb` and `pg_ctl` are: `PG_BIN_DIR`, Debian's PostgreSQL 15, or the PATH."""
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


class PrivatePostgres:
    """A PostgreSQL cluster its caller may stop, freeze and restart at will."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        """Prepare a cluster of the programs in `bin_dir`, kept in `root`."""
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
        """Thaw or start the server, whatever an earlier user left behind."""
        self.thaw()
        if not self.running:
            self.start()

    async def connect(self, database: str = "postgres") -> asyncpg.Connection:
        """Open an administrative connection to `database`."""
        return await asyncpg.connect(postgres.database_dsn(self.admin_dsn, database), timeout=10)

    async def create_database(self) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = await postgres.create_database(self.admin_dsn, prefix="faults", connect_timeout=10)
        return postgres.sqlalchemy_url(postgres.database_dsn(self.admin_dsn, name))

    async def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database`, closing its leftover connections."""
        await postgres.drop_database(self.admin_dsn, url.rsplit("/", 1)[1], connect_timeout=10)
