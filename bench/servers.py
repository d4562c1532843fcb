"""The benchmark's server: `uvicorn APP` with several workers and quiet logs, stopped by SIGINT.

The process itself is `harness.uvicorn`'s, as the tests start it.
"""

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT
from harness.uvicorn import Uvicorn

STARTUP_TIMEOUT_SECONDS = 60.0


@dataclass
class Server:
    """A running uvicorn supervisor and the worker processes it started with."""

    uvicorn: Uvicorn
    worker_pids: list[int]

    @property
    def url(self) -> str:
        """Where it answers."""
        return self.uvicorn.url

    @property
    def all_pids(self) -> list[int]:
        """The supervisor and its workers."""
        return [self.uvicorn.pid, *self.worker_pids]


def start(
    app: str, env: dict[str, str], log_path: Path, workers: int = 2, cwd: Path = ROOT
) -> Server:
    """Start `uvicorn APP --workers N` in `cwd` on a free port; wait until every worker answers.

    `python -m uvicorn` puts `cwd` first on `sys.path`, ahead of the editable install of this
    tree, so a `cwd` holding another checkout serves that checkout's code.
    """
    uvicorn = Uvicorn(
        {**os.environ, **env},
        log_path,
        app=app,
        workers=workers,
        options=("--no-access-log", "--log-level", "warning"),
        cwd=cwd,
    )
    uvicorn.start()
    try:
        uvicorn.wait_ready(
            lambda: len(uvicorn.worker_pids()) == workers and uvicorn.answers("/healthz"),
            timeout=STARTUP_TIMEOUT_SECONDS,
            every=0.2,
        )
    except RuntimeError:
        uvicorn.stop(timeout=20, by=signal.SIGINT)
        raise
    pids = uvicorn.worker_pids()
    # The socket is shared: one healthy answer does not prove the other worker has finished
    # its start-up (migrations, first purge), so give it a moment.
    time.sleep(2)
    return Server(uvicorn=uvicorn, worker_pids=pids)


def stop(server: Server) -> None:
    """Ask the server to shut down; kill its process group if it does not within 20 s."""
    server.uvicorn.stop(timeout=20, by=signal.SIGINT)


@contextlib.contextmanager
def running(app: str, env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> Iterator[Server]:
    """Run a server (from the code in `cwd`) for the duration of a `with` block."""
    server = start(app, env, log_path, cwd=cwd)
    try:
        yield server
    finally:
        stop(server)
