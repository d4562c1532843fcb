"""`uvicorn APP` as a real process: on a free port, in a process group of its own.

Its output goes to a log file. The tests and the benchmark each say when it is ready and how
it should stop.
"""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import psutil

from harness import ROOT
from harness.ports import free_port
from harness.waiting import READY_TIMEOUT_SECONDS, wait_until

# What uvicorn logs (at INFO) once a worker's lifespan start-up has finished.
STARTUP_COMPLETE = "Application startup complete."


class Uvicorn:
    """`python -m uvicorn APP --workers N` on 127.0.0.1, started and stopped at will."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        app: str = "main:app",
        workers: int = 1,
        options: Sequence[str] = (),
        cwd: Path = ROOT,
    ) -> None:
        """Prepare the process; `env` is its whole environment, `options` uvicorn's extra flags.

        `python -m uvicorn` puts `cwd` first on `sys.path`, ahead of the editable install of
        this tree, so a `cwd` holding another checkout serves that checkout's code.
        """
        self.env = dict(env)
        self.log_path = log_path
        self.app = app
        self.workers = workers
        self.options = tuple(options)
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The uvicorn main process (the supervisor, with several workers)."""
        assert self._process is not None, "uvicorn was not started"
        return self._process

    @property
    def pid(self) -> int:
        """The pid of the uvicorn main process."""
        return self.process.pid

    def start(self) -> None:
        """Start the process, appending its output to the log; do not wait for it."""
        command = [
            sys.executable, "-m", "uvicorn", self.app,
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            *self.options,
        ]  # fmt: skip
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and app
                command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own group: stopping it reaches every worker, and a Ctrl-C meant for the
                # caller does not.
                start_new_session=True,
            )

    def wait_ready(
        self,
        ready: Callable[[], bool],
        *,
        timeout: float = READY_TIMEOUT_SECONDS,
        every: float = 0.05,
    ) -> None:
        """Wait until `ready` holds while uvicorn runs.

        Raises `RuntimeError`, with the log, if uvicorn exits first or `timeout` seconds pass.
        """

        def alive_and_ready() -> bool:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"uvicorn exited with {code}:\n{self.log()}")
            return ready()

        try:
            wait_until(alive_and_ready, f"{self.app} ready", timeout=timeout, every=every)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}:\n{self.log()}") from None

    def answers(self, path: str, *, timeout: float = 2) -> bool:
        """Whether `GET path` answers 200 now."""
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.url + path, timeout=timeout).status_code == 200
        return False

    def startups_logged(self) -> int:
        """How many workers have logged the end of their start-up since the last `start`."""
        return self.log().count(STARTUP_COMPLETE)

    def worker_pids(self) -> list[int]:
        """Return the pids of the worker processes (the main process itself with one worker)."""
        if self.workers == 1:
            return [self.pid]
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [child.pid for child in children if "spawn_main" in _cmdline(child)]

    def log(self) -> str:
        """Return what the process wrote to stdout and stderr since the last `start`."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")

    def terminate(self) -> None:
        """Send SIGTERM: uvicorn stops accepting and finishes the requests in flight."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit and return its exit code."""
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(10)

    def stop(self, timeout: float = 30, *, by: signal.Signals = signal.SIGTERM) -> None:
        """Stop gracefully by signal `by`; kill if that takes longer than `timeout` seconds."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(by)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # Workers of a killed supervisor would linger; the group shares their fate.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""
