"""A private PgBouncer in transaction mode, on a free port, in front of a PostgreSQL server."""

import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import make_url

from harness.ports import accepts, free_port
from harness.waiting import READY_TIMEOUT_SECONDS, wait_until


def _binary() -> str | None:
    # Debian installs it to /usr/sbin, which is not on every user's PATH.
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")


def pgbouncer_installed() -> bool:
    """Whether the `pgbouncer` program is installed."""
    return _binary() is not None


class PgBouncer:
    """PgBouncer in transaction mode: a server connection changes hands after each transaction."""

    def __init__(self, directory: Path, upstream_dsn: str, *, server_connections: int) -> None:
        """Prepare a PgBouncer working in `directory`; PgBouncer must be installed.

        It stands in front of the server of `upstream_dsn`, with `server_connections` per
        database and user.
        """
        found = _binary()
        if found is None:
            raise FileNotFoundError("pgbouncer is not installed")
        self.binary = found
        self.directory = directory
        self.upstream = make_url(upstream_dsn)
        self.server_connections = server_connections
        self.port = free_port()
        self.log_path = directory / "pgbouncer.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Write the configuration and the auth file, start, and wait until it accepts."""
        users = self.directory / "userlist.txt"
        users.write_text(f'"{self.upstream.username}" ""\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={self.upstream.host} port={self.upstream.port or 5432}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.server_connections}\n"
            "max_client_conn = 500\n"
            # No ignore_startup_parameters: the service must not send any PgBouncer refuses.
        )
        command = [self.binary, str(config)]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root; it reads its files before it changes user.
            command[1:1] = ["-u", "nobody"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed binary, our own arguments
                command, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._accepts, "pgbouncer accepting connections", timeout=timeout)

    def _accepts(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited:\n{self.log_path.read_text()}")
        return accepts(self.port)

    def url(self, direct_url: str) -> str:
        """Return the URL of the same database through PgBouncer, in PgBouncer mode."""
        name = direct_url.rsplit("/", 1)[1]
        return (
            f"postgresql+asyncpg://{self.upstream.username}@127.0.0.1:{self.port}/"
            f"{name}?prepared_statement_cache_size=0"
        )

    def stop(self) -> None:
        """Stop it (SIGTERM) and wait."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
