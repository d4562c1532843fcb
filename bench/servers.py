"""Start a uvicorn server with several workers as a subprocess, and stop it."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    """Return a TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """A running uvicorn supervisor and its worker processes."""

    process: subprocess.Popen[bytes]
    url: str
    worker_pids: list[int]

    @property
    def all_pids(self) -> list[int]:
        """The supervisor and its workers."""
        return [self.process.pid, *self.worker_pids]


def _workers(supervisor: int) -> list[int]:
    try:
        children = psutil.Process(supervisor).children(recursive=True)
    except psutil.Error:
        return []
    pids = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()):
                pids.append(child.pid)
    return pids


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(
    app: str, env: dict[str, str], log_path: Path, workers: int = 2, cwd: Path = ROOT
) -> Server:
    """Start `uvicorn APP --workers N` in `cwd` on a free port; wait until every worker answers.

    `python -m uvicorn` puts `cwd` first on `sys.path`, ahead of the editable install of this
    tree, so a `cwd` holding another checkout serves that checkout's code.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{app} exited with {process.returncode}; see {log_path.name}")
        pids = _workers(process.pid)
        if len(pids) == workers and _healthy(url):
            # The socket is shared: one healthy answer does not prove the other worker has
            # finished its start-up (migrations, first purge), so give it a moment.
            time.sleep(2)
            return Server(process=process, url=url, worker_pids=pids)
        time.sleep(0.2)
    stop(Server(process=process, url=url, worker_pids=[]))
    raise RuntimeError(f"{app} did not become healthy in {STARTUP_TIMEOUT_SECONDS:.0f} s")


def stop(server: Server) -> None:
    """Ask the server to shut down; kill its process group if it does not within 20 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@contextlib.contextmanager
def running(app: str, env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> Iterator[Server]:
    """Run a server (from the code in `cwd`) for the duration of a `with` block."""
    server = start(app, env, log_path, cwd=cwd)
    try:
        yield server
    finally:
        stop(server)
