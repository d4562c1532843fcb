"""A private `redis-server` on a free port: empty, keeping nothing on disk, stopped at will."""

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from harness.ports import accepts, free_port
from harness.waiting import READY_TIMEOUT_SECONDS, wait_until


def redis_installed() -> bool:
    """Whether `redis-server` is on the PATH."""
    return shutil.which("redis-server") is not None


class RedisServer:
    """A `redis-server` of the caller's, which it may stop and start again on the same port."""

    def __init__(self, directory: Path) -> None:
        """Prepare a server working in `directory`; `redis-server` must be installed."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Start the server (empty) and wait until it accepts connections."""
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary, our own arguments
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(
            lambda: accepts(self.port), "redis-server accepting connections", timeout=timeout
        )

    def stop(self) -> None:
        """Kill the server, as a crash or a network partition would take it away."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    @contextlib.contextmanager
    def running(self) -> Iterator["RedisServer"]:
        """Run the server for the duration of a `with` block, then kill it."""
        try:
            self.start()
            yield self
        finally:
            self.stop()
