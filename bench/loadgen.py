"""The load generator: one process that drives a server and records latencies.

`python -m bench.loadgen MODE ...` with MODE one of:

- `cycle`: N clients, each looping create -> reveal with the correct passphrase;
- `health`: polls `GET /healthz` every `--interval` seconds over a few kept-alive connections;
- `reveal`: reveals pre-loaded keys at a fixed rate (`--rate` per second).

Every process starts its load at the wall-clock instant `--start`, so several processes (and
the orchestrator, which samples CPU and memory) share one measurement window: it opens
`--warmup` seconds later and lasts `--duration` seconds, or until SIGTERM. The results (raw
latencies in milliseconds, error counts, CPU seconds spent in the window) go to `--out` as
JSON.
"""

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from bench.httpclient import Connection, ProtocolError

REQUEST_TIMEOUT_SECONDS = 30.0
CLIENT_STAGGER_SECONDS = 0.01
PASSPHRASE = "correct horse battery staple"  # noqa: S105  (a benchmark fixture)
TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError, ProtocolError)


class Window:
    """The measurement window, in `time.perf_counter` seconds, and the stop signal."""

    def __init__(self, start_epoch: float, warmup: float, duration: float) -> None:
        offset = time.time() - time.perf_counter()
        self.begin = start_epoch - offset
        self.opens = self.begin + warmup
        self.closes = self.opens + duration
        self.stopped = asyncio.Event()
        self.cpu_at_open: float | None = None
        self.cpu_at_close: float | None = None
        self.closed_at: float | None = None

    def over(self) -> bool:
        """Whether the load should stop now."""
        return self.stopped.is_set() or time.perf_counter() >= self.closes

    def inside(self, instant: float) -> bool:
        """Whether `instant` falls in the measured part of the window."""
        return self.opens <= instant < min(self.closes, self.closed_at or self.closes)

    async def watch(self) -> None:
        """Note the CPU clock as the window opens and closes."""
        await _sleep_until(self.opens, self.stopped)
        self.cpu_at_open = time.process_time()
        await _sleep_until(self.closes, self.stopped)
        self.closed_at = min(time.perf_counter(), self.closes)
        self.cpu_at_close = time.process_time()


class Recorder:
    """Latencies (ms) of requests that completed inside the window, and every error."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.latencies: dict[str, list[float]] = {}
        self.errors: Counter[str] = Counter()
        self.completed = 0

    def record(self, name: str, started: float, finished: float) -> None:
        """Keep one latency if the request finished inside the window."""
        if self.window.inside(finished):
            self.latencies.setdefault(name, []).append((finished - started) * 1000)

    def complete(self, finished: float) -> None:
        """Count one completed unit of work (a cycle, a poll, a reveal)."""
        if self.window.inside(finished):
            self.completed += 1

    def error(self, what: str) -> None:
        """Count an error, whenever it happens."""
        self.errors[what] += 1


async def _sleep_until(instant: float, stopped: asyncio.Event) -> None:
    delay = instant - time.perf_counter()
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), delay)


async def _call(
    connection: Connection,
    recorder: Recorder,
    name: str,
    method: str,
    target: str,
    body: bytes | None = None,
) -> tuple[int, bytes] | None:
    started = time.perf_counter()
    try:
        status, content = await asyncio.wait_for(
            connection.request(method, target, body), REQUEST_TIMEOUT_SECONDS
        )
    except TRANSPORT_ERRORS as exc:
        connection.close()
        recorder.error(f"{name}: {type(exc).__name__}")
        await asyncio.sleep(0.1)
        return None
    recorder.record(name, started, time.perf_counter())
    return status, content


async def _cycle_client(index: int, host: str, port: int, window: Window, rec: Recorder) -> None:
    connection = Connection(host, port)
    passphrase = quote(PASSPHRASE)
    iteration = 0
    # Kept-alive connections opened all at once land on whichever worker wakes first, and
    # the other worker idles: clients start apart, so the workers share them out.
    await _sleep_until(window.begin + index * CLIENT_STAGGER_SECONDS, window.stopped)
    while not window.over():
        iteration += 1
        secret = f"benchmark secret {index}-{iteration} ".ljust(64, ".")
        body = json.dumps({"secret": secret, "passphrase": PASSPHRASE}).encode()
        started = time.perf_counter()
        created = await _call(connection, rec, "create", "POST", "/generate", body)
        if created is None:
            continue
        if created[0] != 200:
            rec.error(f"create: HTTP {created[0]}")
            continue
        key = json.loads(created[1])["secret_key"]
        revealed = await _call(
            connection, rec, "reveal", "GET", f"/secrets/{key}?passphrase={passphrase}"
        )
        if revealed is None:
            continue
        if revealed[0] != 200:
            rec.error(f"reveal: HTTP {revealed[0]}")
            continue
        if json.loads(revealed[1]).get("secret") != secret:
            rec.error("reveal: wrong secret")
            continue
        finished = time.perf_counter()
        rec.record("cycle", started, finished)
        rec.complete(finished)
    connection.close()


async def _health_poller(
    offset: int, period: float, host: str, port: int, window: Window, rec: Recorder
) -> None:
    connection = Connection(host, port)
    due = window.begin + offset * period / 4
    while not window.over():
        await _sleep_until(due, window.stopped)
        if window.over():
            break
        answer = await _call(connection, rec, "healthz", "GET", "/healthz")
        if answer is not None:
            if answer[0] == 200:
                rec.complete(time.perf_counter())
            else:
                rec.error(f"healthz: HTTP {answer[0]}")
        due = max(due + period, time.perf_counter())
    connection.close()


async def _paced_reveals(
    keys: list[list[str]], rate: float, host: str, port: int, window: Window, rec: Recorder
) -> bool:
    idle: list[Connection] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def reveal(key: str, passphrase: str, secret: str) -> None:
        connection = idle.pop() if idle else Connection(host, port)
        answer = await _call(
            connection, rec, "reveal", "GET", f"/secrets/{key}?passphrase={quote(passphrase)}"
        )
        idle.append(connection)
        if answer is None:
            return
        if answer[0] != 200:
            rec.error(f"reveal: HTTP {answer[0]}")
        elif json.loads(answer[1]).get("secret") != secret:
            rec.error("reveal: wrong secret")
        else:
            rec.complete(time.perf_counter())

    # Open the pool before the window so no measured request pays for a handshake.
    for _ in range(8):
        connection = Connection(host, port)
        await connection.request("GET", "/healthz")
        idle.append(connection)
    due = window.begin
    remaining = iter(keys)
    exhausted = False
    while not window.over():
        await _sleep_until(due, window.stopped)
        if window.over():
            break
        entry = next(remaining, None)
        if entry is None:
            exhausted = True
            break
        task = asyncio.create_task(reveal(*entry))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        due += 1 / rate
    if in_flight:
        await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT_SECONDS)
    window.stopped.set()
    for connection in idle:
        connection.close()
    return exhausted


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    """Run one load as `arguments` say and return its results."""
    url = urlsplit(arguments.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    window = Window(arguments.start, arguments.warmup, arguments.duration)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, window.stopped.set)
    recorder = Recorder(window)
    watcher = asyncio.create_task(window.watch())
    exhausted = False
    if arguments.mode == "cycle":
        await asyncio.gather(
            *(_cycle_client(i, host, port, window, recorder) for i in range(arguments.clients))
        )
    elif arguments.mode == "health":
        await asyncio.gather(
            *(
                _health_poller(i, arguments.interval * 4, host, port, window, recorder)
                for i in range(4)
            )
        )
    else:
        exhausted = await _paced_reveals(
            arguments.key_list, arguments.rate, host, port, window, recorder
        )
    window.stopped.set()
    await watcher
    opened = window.cpu_at_open
    closed = window.cpu_at_close if window.cpu_at_close is not None else time.process_time()
    seconds = (window.closed_at or time.perf_counter()) - window.opens
    return {
        "mode": arguments.mode,
        "window_seconds": max(seconds, 0.0),
        "completed": recorder.completed,
        "latencies_ms": recorder.latencies,
        "errors": dict(recorder.errors),
        "cpu_seconds": closed - opened if opened is not None else 0.0,
        "exhausted": exhausted,
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("mode", choices=["cycle", "health", "reveal"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--start", type=float, required=True, help="epoch seconds")
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--keys", help="JSON list of [key, passphrase, secret]")
    parser.add_argument("--rate", type=float, default=100.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the load-generator process."""
    arguments = _parse(argv)
    arguments.key_list = json.loads(Path(arguments.keys).read_text()) if arguments.keys else []
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        results = asyncio.run(run(arguments))
    else:
        results = uvloop.run(run(arguments))
    Path(arguments.out).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
