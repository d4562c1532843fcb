"""Scenarios 2-7: drive running servers with load-generator processes and measure them."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg

from bench import database, procs, profiling
from bench.ceiling import PASSPHRASE
from bench.httpclient import Connection
from bench.loadgen import TRANSPORT_ERRORS
from bench.servers import Server
from bench.stats import summarize
from harness import ROOT

MEGABYTE = 1024 * 1024
# The workers' main threads, beside the per-worker groups of `drive`'s CPU readings.
EVENT_LOOPS = "event loops of the server"
REVEAL_WARMUP_SECONDS = 3.0


@dataclass(frozen=True)
class Profile:
    """How long and how big each scenario runs."""

    name: str
    ceiling_seconds: float
    warmup_seconds: float
    cycle_seconds: float
    clients: int
    loadgen_processes: int
    health_interval_seconds: float
    table_sizes: tuple[int, ...]
    reveals_per_size: int
    reveal_rate: float
    purge_rows: int
    purge_reveal_seconds: float
    quiet_budget_seconds: float
    profile_seconds: float
    retries: int
    # Head to head at the default argon2: rounds of ceiling, service, baseline, the service
    # notifying and the service hashing on its loop, each for this many measured seconds; the
    # targets take the rounds' medians. As many rounds as contenders: each takes every place.
    rounds: int
    rounds_seconds: float
    # Webhook delivery's CPU, our sender against httpcore's pool: rounds, deliveries a round.
    delivery_rounds: int
    delivery_count: int
    # Overload: connections as multiples of `clients`, warm-up and measured seconds a run,
    # whether a client waits Retry-After before its next cycle once one was refused, and how
    # many secrets revealed during a run the ledger check tries again (each costs a hash).
    overload_multiples: tuple[int, ...]
    overload_warmup_seconds: float
    overload_seconds: float
    overload_honours_retry_after: bool
    overload_recheck_revealed: int


FULL = Profile(
    name="full",
    ceiling_seconds=10,
    warmup_seconds=3,
    cycle_seconds=30,
    clients=16,
    loadgen_processes=1,
    health_interval_seconds=0.05,
    table_sizes=(1_000, 1_000_000),
    reveals_per_size=1_000,
    reveal_rate=100,
    purge_rows=1_000_000,
    purge_reveal_seconds=120,
    quiet_budget_seconds=300,
    profile_seconds=10,
    retries=2,
    rounds=5,
    rounds_seconds=15,
    delivery_rounds=6,
    delivery_count=2000,
    overload_multiples=(1, 8, 32),
    overload_warmup_seconds=3,
    overload_seconds=15,
    overload_honours_retry_after=True,
    overload_recheck_revealed=100,
)
SMOKE = Profile(
    name="smoke",
    ceiling_seconds=2,
    warmup_seconds=1,
    cycle_seconds=3,
    clients=8,
    loadgen_processes=1,
    health_interval_seconds=0.05,
    table_sizes=(1_000, 5_000),
    reveals_per_size=100,
    reveal_rate=100,
    purge_rows=5_000,
    purge_reveal_seconds=5,
    quiet_budget_seconds=0,
    profile_seconds=0,
    retries=0,
    rounds=1,
    rounds_seconds=2,
    delivery_rounds=1,
    delivery_count=80,
    overload_multiples=(8,),
    overload_warmup_seconds=1,
    overload_seconds=2,
    overload_honours_retry_after=True,
    overload_recheck_revealed=20,
)


def _spawn(mode: str, url: str, start: float, out: Path, *options: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        mode,
        "--url",
        url,
        "--start",
        repr(start),
        "--out",
        str(out),
        *options,
    ]
    return subprocess.Popen(command, cwd=ROOT)  # noqa: S603


async def _collect(
    process: subprocess.Popen[bytes], out: Path, limit_seconds: float
) -> dict[str, Any]:
    try:
        async with asyncio.timeout(limit_seconds):
            code = await asyncio.to_thread(process.wait)
    except TimeoutError:
        process.kill()
        raise RuntimeError(
            f"load generator {out.name} still ran after {limit_seconds:.0f} s"
        ) from None
    if code != 0:
        raise RuntimeError(f"load generator {out.name} failed with exit code {code}")
    result: dict[str, Any] = json.loads(await asyncio.to_thread(out.read_text))
    return result


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {}
    for part in parts:
        for name, values in part["latencies_ms"].items():
            latencies.setdefault(name, []).extend(values)
    return {
        "window_seconds": max(part["window_seconds"] for part in parts),
        "completed": sum(part["completed"] for part in parts),
        "latencies_ms": latencies,
        "errors": _sum_counts(part["errors"] for part in parts),
        "cpu_seconds": sum(part["cpu_seconds"] for part in parts),
        "exhausted": any(part.get("exhausted") for part in parts),
        "refused": _sum_counts(part.get("refused", {}) for part in parts),
        "ledger": {
            name: [entry for part in parts for entry in part.get("ledger", {}).get(name, [])]
            for name in ("pending", "revealed", "uncertain")
        },
    }


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for name, count in part.items():
            total[name] = total.get(name, 0) + count
    return total


async def _sleep_until(epoch: float) -> None:
    await asyncio.sleep(max(epoch - time.time(), 0.0))


def cpu_report(seconds: dict[str, float], window: float, cores: int) -> dict[str, Any]:
    """CPU seconds per group over a window, and each group's share of all cores."""
    return {
        "seconds": seconds,
        "share_of_machine": {name: value / (window * cores) for name, value in seconds.items()},
    }


@dataclass(frozen=True)
class Load:
    """A load to drive: which load-generator mode, how many clients, for how long."""

    mode: str
    clients: int
    processes: int
    warmup_seconds: float
    seconds: float
    health_interval_seconds: float
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Driven:
    """What a load measured: the load generators' merged results and the server's costs."""

    load: dict[str, Any]
    health: dict[str, Any]
    cpu: dict[str, float]
    peak_rss_mb: list[float]


async def drive(server: Server, load: Load, workdir: Path, label: str) -> Driven:
    """Run `load` and a /healthz poller against `server`; meter CPU and peak RSS meanwhile."""
    start = time.time() + 2.0
    opens = start + load.warmup_seconds
    closes = opens + load.seconds
    timing = ["--warmup", str(load.warmup_seconds), "--duration", str(load.seconds)]
    share = [load.clients // load.processes] * load.processes
    share[0] += load.clients - sum(share)
    outs = [workdir / f"{label}-{load.mode}-{index}.json" for index in range(len(share))]
    loaders = [
        _spawn(load.mode, server.url, start, out, *timing, "--clients", str(clients), *load.options)
        for out, clients in zip(outs, share, strict=True)
    ]
    health_out = workdir / f"{label}-health.json"
    poller = _spawn(
        "health",
        server.url,
        start,
        health_out,
        *timing,
        "--interval",
        str(load.health_interval_seconds),
    )
    groups = {f"worker {index + 1}": [pid] for index, pid in enumerate(server.worker_pids)}
    groups |= {
        "uvicorn supervisor": [server.uvicorn.pid],
        "load generator": [loader.pid for loader in loaders],
        "healthz poller": [poller.pid],
    }
    with procs.RssSampler(server.worker_pids) as rss:
        await _sleep_until(opens)
        # Read PostgreSQL's processes only now: the pools open their connections in the warm-up.
        meter = procs.CpuMeter({**groups, "postgres": procs.postgres_pids()})
        meter.start()
        loops = sum(procs.main_thread_seconds(pid) for pid in server.worker_pids)
        await _sleep_until(closes)
        cpu = meter.stop()
        # The rest of a worker's CPU is its other threads': the argon2 pool's, in the service.
        loops = sum(procs.main_thread_seconds(pid) for pid in server.worker_pids) - loops
        cpu[EVENT_LOOPS] = max(loops, 0.0)
        timeout = load.seconds + 60
        merged = _merge([await _collect(p, o, timeout) for p, o in zip(loaders, outs, strict=True)])
        health = await _collect(poller, health_out, timeout)
    return Driven(
        load=merged,
        health=health,
        cpu=cpu,
        peak_rss_mb=[rss.peaks[pid] / MEGABYTE for pid in server.worker_pids],
    )


async def cycle(
    server: Server,
    profile: Profile,
    workdir: Path,
    label: str,
    *,
    keep_latencies: bool = False,
    notify_url: str | None = None,
) -> dict[str, Any]:
    """Scenarios 2, 3 and 7: create -> reveal loops, a /healthz poller, CPU and peak RSS.

    With `keep_latencies` the result also holds every latency (`latencies_ms_raw`), for a
    caller that pools several runs; with `notify_url` every create asks to be notified there.
    """
    spec = Load(
        mode="cycle",
        clients=profile.clients,
        processes=profile.loadgen_processes,
        warmup_seconds=profile.warmup_seconds,
        seconds=profile.cycle_seconds,
        health_interval_seconds=profile.health_interval_seconds,
        options=("--notify-url", notify_url) if notify_url else (),
    )
    driven = await drive(server, spec, workdir, label)
    load, cpu, window = driven.load, driven.cpu, profile.cycle_seconds
    cores = os.cpu_count() or 1
    cycles = max(load["completed"], 1)
    worker_seconds = sum(cpu[f"worker {index + 1}"] for index in range(len(server.worker_pids)))
    raw = {"latencies_ms_raw": load["latencies_ms"]} if keep_latencies else {}
    return {
        **raw,
        "label": label,
        "clients": profile.clients,
        "window_seconds": load["window_seconds"],
        "cycles": load["completed"],
        "cycles_per_second": load["completed"] / load["window_seconds"],
        "latency_ms": {name: summarize(values) for name, values in load["latencies_ms"].items()},
        "errors": load["errors"],
        "healthz_ms": summarize(driven.health["latencies_ms"].get("healthz", [])),
        "healthz_errors": driven.health["errors"],
        "loadgen_cpu_of_one_core": load["cpu_seconds"] / window,
        "cpu": cpu_report(cpu, window, cores),
        "cpu_ms_per_cycle": {
            "workers": worker_seconds * 1000 / cycles,
            "event loops": cpu[EVENT_LOOPS] * 1000 / cycles,
            "other threads": (worker_seconds - cpu[EVENT_LOOPS]) * 1000 / cycles,
            "postgres": cpu["postgres"] * 1000 / cycles,
            "load generator": cpu["load generator"] * 1000 / cycles,
        },
        "peak_rss_mb": driven.peak_rss_mb,
    }


# One load-generator process per this many connections: a single asyncio process keeps up
# with a few hundred, and the table shows its CPU share to prove it.
CONNECTIONS_PER_LOADGEN = 256
# The ledger check reveals over this many connections, below the workers' hashing slots, so
# its own requests do not queue; a refusal it meets anyway is retried, as it is no load.
LEDGER_CONNECTIONS = 2
LEDGER_ATTEMPTS = 5
LEDGER_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Overload:
    """One overload run: how many connections, and the service's hashing queue bound."""

    connections: int
    queue_timeout_seconds: float

    @property
    def admission(self) -> str:
        """`on` when refusals are possible, `off` for the unbounded queue."""
        return "on" if self.queue_timeout_seconds != float("inf") else "off"

    @property
    def env(self) -> dict[str, str]:
        """What the server needs in its environment for this run."""
        return {"HASH_QUEUE_TIMEOUT_SECONDS": repr(self.queue_timeout_seconds)}


async def overload(
    server: Server, profile: Profile, run: Overload, workdir: Path, label: str
) -> dict[str, Any]:
    """Run the overload scenario: `cycle` with no retry on 503, then the ledger check."""
    processes = -(-run.connections // CONNECTIONS_PER_LOADGEN)
    # Every client is connected by half the warm-up, however many there are.
    stagger = min(0.01, profile.overload_warmup_seconds / 2 / run.connections)
    options = ["--stagger", repr(stagger)]
    if profile.overload_honours_retry_after:
        options.append("--honour-retry-after")
    spec = Load(
        mode="overload",
        clients=run.connections,
        processes=processes,
        warmup_seconds=profile.overload_warmup_seconds,
        seconds=profile.overload_seconds,
        health_interval_seconds=profile.health_interval_seconds,
        options=tuple(options),
    )
    driven = await drive(server, spec, workdir, label)
    load, window = driven.load, profile.overload_seconds
    latencies = load["latencies_ms"]
    ledger = await check_ledger(server, load["ledger"], profile.overload_recheck_revealed)
    return {
        "connections": run.connections,
        "admission": run.admission,
        "queue_timeout_seconds": run.queue_timeout_seconds,
        "goodput": load["completed"] / load["window_seconds"],
        "accepted_ms": summarize(latencies.get("create", []) + latencies.get("reveal", [])),
        "refused_ms": summarize(
            latencies.get("create refused", []) + latencies.get("reveal refused", [])
        ),
        "latency_ms": {name: summarize(values) for name, values in latencies.items()},
        # Refusals over the whole run, warm-up included: the ledger counts those secrets too.
        "refused": load["refused"],
        "errors": load["errors"],
        "healthz_ms": summarize(driven.health["latencies_ms"].get("healthz", [])),
        "healthz_errors": driven.health["errors"],
        "peak_rss_mb": driven.peak_rss_mb,
        "loadgen_processes": processes,
        "loadgen_cpu_of_one_core": load["cpu_seconds"] / window / processes,
        "cpu": cpu_report(driven.cpu, window, os.cpu_count() or 1),
        "ledger": ledger,
    }


async def _ledger_reveal(
    connection: Connection, key: str, counts: dict[str, int]
) -> tuple[int, bytes]:
    target = f"/secrets/{key}?passphrase={quote(PASSPHRASE)}"
    for _ in range(LEDGER_ATTEMPTS):
        status, content = await asyncio.wait_for(
            connection.request("GET", target), LEDGER_TIMEOUT_SECONDS
        )
        if status != 503:
            return status, content
        counts["refusals retried"] = counts.get("refusals retried", 0) + 1
        await asyncio.sleep(connection.retry_after or 1.0)
    return status, content


async def check_ledger(
    server: Server, ledger: dict[str, list[Any]], recheck_revealed: int
) -> dict[str, Any]:
    """Check that every secret of an overload run is revealable exactly once.

    A secret whose reveal was refused is revealed now, once, and must come back whole; a
    second reveal must find nothing. One whose reveal ended in a transport error may or may
    not have been revealed (that error already fails the run), but a second reveal must find
    nothing. Of those revealed during the run an even sample is tried again (each miss costs
    a dummy hash): each must find nothing.
    """
    revealed = ledger["revealed"]
    step = max(len(revealed) // max(recheck_revealed, 1), 1)
    sample = revealed[::step][:recheck_revealed]
    jobs: list[tuple[str, str, str | None]] = [
        *(("pending", key, secret) for key, secret in ledger["pending"]),
        *(("uncertain", key, None) for key in ledger["uncertain"]),
        *(("revealed", key, None) for key in sample),
    ]
    counts: dict[str, int] = {}
    violations: dict[str, int] = {}

    def violation(what: str) -> None:
        violations[what] = violations.get(what, 0) + 1

    async def check(kind: str, key: str, secret: str | None, connection: Connection) -> None:
        if kind in ("pending", "uncertain"):
            status, content = await _ledger_reveal(connection, key, counts)
            if kind == "pending" and status != 200:
                violation(f"refused reveal, revealed afterwards: HTTP {status}")
            elif kind == "pending" and json.loads(content).get("secret") != secret:
                violation("refused reveal, revealed afterwards: wrong secret")
            elif kind == "uncertain" and status not in (200, 404):
                violation(f"uncertain reveal, revealed afterwards: HTTP {status}")
        status, _ = await _ledger_reveal(connection, key, counts)
        if status != 404:
            violation(f"{kind} secret revealed again: HTTP {status} instead of 404")

    url = urlsplit(server.url)
    queue = list(reversed(jobs))

    async def worker() -> None:
        connection = Connection(url.hostname or "127.0.0.1", url.port or 80)
        try:
            while queue:
                kind, key, secret = queue.pop()
                try:
                    await check(kind, key, secret, connection)
                except (*TRANSPORT_ERRORS, ValueError) as exc:
                    violation(f"{kind}: {type(exc).__name__}")
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(LEDGER_CONNECTIONS)))
    return {
        "pending": len(ledger["pending"]),
        "uncertain": len(ledger["uncertain"]),
        "revealed": len(revealed),
        "rechecked": len(sample),
        "refusals_retried": counts.get("refusals retried", 0),
        "violations": violations,
    }


async def profile_workers(
    server: Server, profile: Profile, workdir: Path, label: str
) -> dict[str, Any]:
    """Run the cycle load again while py-spy samples every worker; summarise the samples."""
    start = time.time() + 2.0
    seconds = profile.profile_seconds
    out = workdir / f"{label}-profiled-cycle.json"
    loader = _spawn(
        "cycle",
        server.url,
        start,
        out,
        "--warmup",
        "1",
        "--duration",
        str(seconds + 2),
        "--clients",
        str(profile.clients),
    )
    await _sleep_until(start + 1)
    spies = profiling.record(server.worker_pids, seconds, workdir, label)
    for spy in spies:
        await asyncio.to_thread(spy.wait)
    await _collect(loader, out, seconds + 60)
    paths = [workdir / f"{label}-{pid}.folded" for pid in server.worker_pids]
    return profiling.summarize(paths)


async def _reveal_run(
    server: Server,
    keys: list[list[str]],
    rate: float,
    seconds: float,
    out: Path,
    start: float,
    warmup: float = 0.0,
) -> subprocess.Popen[bytes]:
    out.with_suffix(".keys.json").write_text(json.dumps(keys))
    return _spawn(
        "reveal",
        server.url,
        start,
        out,
        "--warmup",
        str(warmup),
        "--duration",
        str(seconds),
        "--keys",
        str(out.with_suffix(".keys.json")),
        "--rate",
        str(rate),
    )


def _scale_meter(server: Server, process: subprocess.Popen[bytes]) -> procs.CpuMeter:
    meter = procs.CpuMeter(
        {
            "server": server.all_pids,
            "load generator": [process.pid],
            "postgres": procs.postgres_pids(),
            "benchmark": [os.getpid()],
        }
    )
    meter.start()
    return meter


def _foreign(meter: procs.CpuMeter, seconds: float, load: dict[str, Any]) -> float:
    # The load generator has exited by now, so the meter saw its CPU as someone else's.
    other = max(meter.stop()["other processes"] - float(load["cpu_seconds"]), 0.0)
    return other / (max(seconds, 1e-9) * (os.cpu_count() or 1))


async def _require_receipts(connection: asyncpg.Connection) -> None:
    # The server under test migrated this database before it answered /healthz; without the
    # receipts table the bulk load would fail, or measure a schema the service no longer has.
    if await connection.fetchval("SELECT to_regclass('receipts')") is None:
        raise RuntimeError("scale: the database has no receipts table (not migrated to head?)")


async def _count_receipts(connection: asyncpg.Connection, status: str) -> int:
    count: int = await connection.fetchval(
        "SELECT count(*) FROM receipts WHERE status = $1", status
    )
    return count


def _reveal_summary(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "reveals": result["completed"],
        "latency_ms": summarize(result["latencies_ms"].get("reveal", [])),
        "errors": result["errors"],
        "refused": result.get("refused", {}).get("reveal", 0),
    }


async def scale(
    server: Server, database_name: str, profile: Profile, workdir: Path
) -> dict[str, Any]:
    """Scenario 6: reveal latency at each table size, then a purge of many expired rows.

    Every bulk-loaded secret comes with its receipt, so both tables grow together and each
    reveal and the purge update receipts, as they do in the service.
    """
    from api.domain.hashing import Argon2Parameters, protect
    from api.domain.purge import purge_expired
    from api.settings import Settings
    from api.storage.database import Database, create_engine
    from models import StoredReceiptStatus

    # One record for every bulk-loaded secret, in the service's own format.
    protected = protect(PASSPHRASE, Argon2Parameters(8, 1, 1))
    passphrase_hash = protected.record
    # The same environment as the server's, so the same receipt retention.
    settings = Settings(database_url=database.sqlalchemy_url(database_name))
    retention = settings.receipt_retention_seconds
    connection = await database.connect(database_name)
    results: dict[str, Any] = {"sizes": []}
    try:
        await _require_receipts(connection)
        for size in profile.table_sizes:
            await connection.execute("TRUNCATE secrets, receipts")
            # The first reveals after a start or a bulk load run cold (statement caches,
            # buffers): warm up at the same rate for REVEAL_WARMUP_SECONDS, unrecorded.
            warmup_keys = int(profile.reveal_rate * REVEAL_WARMUP_SECONDS)
            keys = await database.insert_revealable(
                connection,
                profile.reveals_per_size + warmup_keys,
                passphrase=PASSPHRASE,
                protected=protected,
                retention_seconds=retention,
            )
            loading = time.perf_counter()
            await database.insert_filler(
                connection,
                size,
                passphrase_hash=passphrase_hash,
                expired=False,
                retention_seconds=retention,
            )
            await database.vacuum_analyze(connection)
            load_seconds = time.perf_counter() - loading
            rows = await database.count_rows(connection)
            receipts = await database.count_rows(connection, "receipts")
            print(
                f"[bench] scale: {rows:,} secrets and {receipts:,} receipts loaded "
                f"in {load_seconds:.1f} s"
            )
            out = workdir / f"scale-{size}.json"
            seconds = profile.reveals_per_size / profile.reveal_rate + 10
            start = time.time() + 2.0
            process = await _reveal_run(
                server, keys, profile.reveal_rate, seconds, out, start, REVEAL_WARMUP_SECONDS
            )
            await _sleep_until(start + REVEAL_WARMUP_SECONDS)
            meter = _scale_meter(server, process)
            result = await _collect(process, out, seconds + 60)
            other = _foreign(meter, time.time() - start - REVEAL_WARMUP_SECONDS, result)
            results["sizes"].append(
                {
                    "size": size,
                    "rows_at_start": rows,
                    "rows_at_end": await database.count_rows(connection),
                    "receipts_at_start": receipts,
                    "receipts_at_end": await database.count_rows(connection, "receipts"),
                    "receipts_revealed": await _count_receipts(
                        connection, StoredReceiptStatus.REVEALED.value
                    ),
                    "load_seconds": load_seconds,
                    "other_processes_share": other,
                    **_reveal_summary(result),
                }
            )

        budget = profile.purge_reveal_seconds
        keys = await database.insert_revealable(
            connection,
            int(profile.reveal_rate * budget),
            passphrase=PASSPHRASE,
            protected=protected,
            retention_seconds=retention,
        )
        loading = time.perf_counter()
        await database.insert_filler(
            connection,
            profile.purge_rows,
            passphrase_hash=passphrase_hash,
            expired=True,
            retention_seconds=retention,
        )
        await database.vacuum_analyze(connection)
        load_seconds = time.perf_counter() - loading
        live_rows = await connection.fetchval(
            "SELECT count(*) FROM secrets WHERE expires_at > now()"
        )
        expired_rows = await connection.fetchval(
            "SELECT count(*) FROM secrets WHERE expires_at <= now()"
        )
        receipts = await database.count_rows(connection, "receipts")
        print(
            f"[bench] scale: purging {expired_rows:,} expired of {live_rows + expired_rows:,} "
            f"secrets, beside {receipts:,} receipts"
        )

        db = Database(create_engine(settings))
        out = workdir / "purge-reveals.json"
        start = time.time() + 2.0
        process = await _reveal_run(server, keys, profile.reveal_rate, budget, out, start)
        await _sleep_until(start)
        meter = _scale_meter(server, process)
        purging = time.perf_counter()
        try:
            purged = await purge_expired(db=db, batch_size=settings.purge_batch_size)
        finally:
            purge_seconds = time.perf_counter() - purging
            process.send_signal(signal.SIGTERM)
            await db.aclose()
        reveals = await _collect(process, out, 60)
        other = _foreign(meter, purge_seconds, reveals)
        left = await connection.fetchval("SELECT count(*) FROM secrets WHERE expires_at <= now()")
        # The tables were truncated before the first size, so only this purge expired receipts
        # (and deleted none: their retention runs for days after their expiry).
        receipts_expired = await _count_receipts(connection, StoredReceiptStatus.EXPIRED.value)
        receipts_left_pending = await connection.fetchval(
            "SELECT count(*) FROM receipts WHERE status = $1 AND expires_at <= now()",
            StoredReceiptStatus.PENDING.value,
        )
        results["purge"] = {
            "expired_rows": expired_rows,
            "live_rows": live_rows,
            "load_seconds": load_seconds,
            "batch_size": settings.purge_batch_size,
            "purged": purged,
            "left_expired": left,
            "receipts": receipts,
            "receipts_expired": receipts_expired,
            "receipts_left_pending": receipts_left_pending,
            "seconds": purge_seconds,
            "other_processes_share": other,
            "reveals_ran_out": reveals["exhausted"],
            **_reveal_summary(reveals),
        }
    finally:
        await connection.close()
    return results
