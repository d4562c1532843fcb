"""The load generator: one process that drives a server and records latencies.

`python -m bench.loadgen MODE ...` with MODE one of:

- `cycle`: N clients, each looping create -> reveal with the correct passphrase; a 503 at
  capacity is counted as refused and waited out (Retry-After, at most 1 s), not an error;
- `health`: polls `GET /healthz` every `--interval` seconds over a few kept-alive connections;
- `reveal`: reveals pre-loaded keys at a fixed rate (`--rate` per second); a 503 at
  capacity is counted as refused, not as an error;
- `overload`: like `cycle`, but a 503 (refused at capacity) is not retried: it is recorded
  and the client goes on to its next cycle; the secrets whose reveal was refused go into a
  ledger, to be revealed once the load is over.

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
AT_CAPACITY = "at capacity"  # in the body of the service's 503 when hashing is refused
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
        # Overload only: 503s by step over the whole run, and what became of each secret.
        self.refused: Counter[str] = Counter()
        self.ledger: dict[str, list[Any]] = {"pending": [], "revealed": [], "uncertain": []}

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


async def _send(
    connection: Connection,
    recorder: Recorder,
    name: str,
    method: str,
    target: str,
    body: bytes | None = None,
) -> tuple[int, bytes, float] | None:
    """Send one request; return its status, body and start instant, or None on a failure."""
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
    return status, content, started


async def _call(
    connection: Connection,
    recorder: Recorder,
    name: str,
    method: str,
    target: str,
    body: bytes | None = None,
) -> tuple[int, bytes] | None:
    answer = await _send(connection, recorder, name, method, target, body)
    if answer is None:
        return None
    status, content, started = answer
    recorder.record(name, started, time.perf_counter())
    return status, content


def _refused(
    name: str, answer: tuple[int, bytes, float], connection: Connection, rec: Recorder
) -> bool:
    """Record a 503 at capacity (latency and count) and say so; anything else is not one."""
    status, content, started = answer
    if status != 503:
        return False
    if AT_CAPACITY not in content.decode("utf-8", "replace"):
        # A 503 for another reason (the database) is an error, not admission control.
        rec.error(f"{name}: HTTP 503 not at capacity")
    elif connection.retry_after is None:
        rec.error(f"{name}: HTTP 503 without Retry-After")
    rec.refused[name] += 1
    rec.record(f"{name} refused", started, time.perf_counter())
    return True


def _at_capacity(name: str, answer: tuple[int, bytes], rec: Recorder) -> bool:
    """Count a 503 of admission control; any other answer, a 503 of the database too, is not."""
    status, content = answer
    if status != 503 or AT_CAPACITY not in content.decode("utf-8", "replace"):
        return False
    rec.refused[name] += 1
    return True


async def _polite_pause(connection: Connection) -> None:
    # A refusal at capacity is admission control doing its job on a machine busier than the
    # load (CI shares its cores): counted, and waited out as the answer asks, not an error.
    await asyncio.sleep(min(connection.retry_after or 1.0, 1.0))


async def _cycle_client(
    index: int, host: str, port: int, window: Window, rec: Recorder, notify_url: str | None
) -> None:
    connection = Connection(host, port)
    passphrase = quote(PASSPHRASE)
    iteration = 0
    # Kept-alive connections opened all at once land on whichever worker wakes first, and
    # the other worker idles: clients start apart, so the workers share them out.
    await _sleep_until(window.begin + index * CLIENT_STAGGER_SECONDS, window.stopped)
    while not window.over():
        iteration += 1
        secret = f"benchmark secret {index}-{iteration} ".ljust(64, ".")
        fields = {"secret": secret, "passphrase": PASSPHRASE}
        if notify_url is not None:
            fields["notify_url"] = notify_url
        body = json.dumps(fields).encode()
        started = time.perf_counter()
        created = await _call(connection, rec, "create", "POST", "/generate", body)
        if created is None:
            continue
        if _at_capacity("create", created, rec):
            await _polite_pause(connection)
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
        if _at_capacity("reveal", revealed, rec):
            await _polite_pause(connection)
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


async def _overload_cycle(connection: Connection, name: str, rec: Recorder) -> bool:
    """Run one create -> reveal cycle that takes no retry; return whether it was refused."""
    secret = f"overload secret {name} ".ljust(64, ".")
    body = json.dumps({"secret": secret, "passphrase": PASSPHRASE}).encode()
    created = await _send(connection, rec, "create", "POST", "/generate", body)
    if created is None:
        return False
    if _refused("create", created, connection, rec):
        return True
    status, content, started = created
    rec.record("create", started, time.perf_counter())
    if status != 200:
        rec.error(f"create: HTTP {status}")
        return False
    key = json.loads(content)["secret_key"]
    target = f"/secrets/{key}?passphrase={quote(PASSPHRASE)}"
    revealed = await _send(connection, rec, "reveal", "GET", target)
    if revealed is None:
        # The server may or may not have revealed it: the ledger cannot say which.
        rec.ledger["uncertain"].append(key)
        return False
    if _refused("reveal", revealed, connection, rec):
        rec.ledger["pending"].append([key, secret])
        return True
    status, content, reveal_started = revealed
    rec.record("reveal", reveal_started, time.perf_counter())
    if status != 200:
        rec.error(f"reveal: HTTP {status}")
        rec.ledger["uncertain"].append(key)
        return False
    rec.ledger["revealed"].append(key)
    if json.loads(content).get("secret") != secret:
        rec.error("reveal: wrong secret")
        return False
    finished = time.perf_counter()
    rec.record("cycle", started, finished)
    rec.complete(finished)
    return False


async def _overload_client(
    index: int, arguments: argparse.Namespace, host: str, port: int, window: Window, rec: Recorder
) -> None:
    connection = Connection(host, port)
    iteration = 0
    await _sleep_until(window.begin + index * arguments.stagger, window.stopped)
    while not window.over():
        iteration += 1
        refused = await _overload_cycle(connection, f"{index}-{iteration}", rec)
        if refused and arguments.honour_retry_after:
            # The next cycle is a new one, not a retry, but it comes when the server asked.
            pause = connection.retry_after or 0.0
            await _sleep_until(time.perf_counter() + pause, window.stopped)
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
        target = f"/secrets/{key}?passphrase={quote(passphrase)}"
        answer = await _send(connection, rec, "reveal", "GET", target)
        # Admission control may refuse a paced reveal on a busy machine: that is timing,
        # counted apart (the report decides), not a failed request.
        if answer is None or _refused("reveal", answer, connection, rec):
            idle.append(connection)
            return
        status, content, started = answer
        rec.record("reveal", started, time.perf_counter())
        idle.append(connection)
        if status != 200:
            rec.error(f"reveal: HTTP {status}")
        elif json.loads(content).get("secret") != secret:
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
            *(
                _cycle_client(i, host, port, window, recorder, arguments.notify_url)
                for i in range(arguments.clients)
            )
        )
    elif arguments.mode == "overload":
        await asyncio.gather(
            *(
                _overload_client(i, arguments, host, port, window, recorder)
                for i in range(arguments.clients)
            )
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
        "refused": dict(recorder.refused),
        "ledger": recorder.ledger,
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("mode", choices=["cycle", "health", "reveal", "overload"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--start", type=float, required=True, help="epoch seconds")
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument(
        "--stagger", type=float, default=CLIENT_STAGGER_SECONDS, help="seconds between clients"
    )
    parser.add_argument(
        "--honour-retry-after",
        action="store_true",
        help="after a refused cycle, wait Retry-After seconds before the next",
    )
    parser.add_argument("--keys", help="JSON list of [key, passphrase, secret]")
    parser.add_argument("--notify-url", help="cycle: ask to be notified here on every create")
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
