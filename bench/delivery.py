"""Webhook delivery's CPU: our sender (h11 on connections of our own) against httpcore's pool.

`api.webhooks.delivery` replaced httpcore's connection pool, a maintained library, with h11
framing on connections it keeps itself; this is the figure that keeps it. Both POST the same
signed body to one local receiver (`bench.receiver`, answering at once, a process of its
own), `concurrency` at a time as a notifier's batch does, in alternating rounds; the figure
is this process's CPU per delivery, the median of the rounds.
"""

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpcore
import httpx

from api.webhooks import DestinationPolicy, WebhookSender, check_url
from harness import ROOT
from harness.ports import accepts, free_port
from harness.waiting import wait_until

BODY = b'{"closed_at":"2026-12-07T08:00:00Z","failed_attempts":0,"public_id":"r_x"}'
HEADERS = {
    "webhook-id": "msg_bench",
    "webhook-timestamp": "1796630400",
    "webhook-signature": "v1,x",
}
POLICY = DestinationPolicy(
    allowed_hosts=frozenset({"127.0.0.1"}), allow_http=True, allow_private=True
)
OURS, HTTPCORE = "ours", "httpcore"

Send = Callable[[], Awaitable[bool]]


def _ours(url: str, sender: WebhookSender) -> Send:
    async def send() -> bool:
        return (await sender.deliver(url, body=BODY, headers=HEADERS)).delivered

    return send


def _httpcore(url: str, pool: httpcore.AsyncConnectionPool) -> Send:
    # What the sender did before: the policy's check, the URL parsed, a pooled POST with the
    # answer read up to 4 KB.
    async def send() -> bool:
        assert check_url(url, POLICY) is None
        parsed = httpx.URL(url)
        headers = [(b"host", parsed.netloc), (b"content-type", b"application/json")]
        headers += [(name.encode(), value.encode()) for name, value in HEADERS.items()]
        async with pool.stream("POST", url, headers=headers, content=BODY) as response:
            async for _ in response.aiter_stream():
                break
            return 200 <= response.status < 300

    return send


async def _round(send: Send, deliveries: int, concurrency: int) -> float:
    started = time.process_time()
    for _ in range(deliveries // concurrency):
        delivered = await asyncio.gather(*(send() for _ in range(concurrency)))
        if not all(delivered):
            raise RuntimeError("a delivery to the local receiver failed")
    return (time.process_time() - started) / deliveries * 1000


async def _measure(url: str, rounds: int, deliveries: int, concurrency: int) -> dict[str, Any]:
    per_round: dict[str, list[float]] = {OURS: [], HTTPCORE: []}
    async with (
        WebhookSender(POLICY) as sender,
        httpcore.AsyncConnectionPool(max_connections=20, keepalive_expiry=5.0) as pool,
    ):
        sends = {OURS: _ours(url, sender), HTTPCORE: _httpcore(url, pool)}
        for send in sends.values():  # connections opened, code paths warm
            await _round(send, concurrency, concurrency)
        for index in range(rounds):
            order = (OURS, HTTPCORE) if index % 2 == 0 else (HTTPCORE, OURS)
            for name in order:
                per_round[name].append(await _round(sends[name], deliveries, concurrency))
    return {
        "rounds": rounds,
        "deliveries_per_round": deliveries,
        "concurrency": concurrency,
        "cpu_ms_per_delivery": per_round,
        "median_ms": {name: statistics.median(values) for name, values in per_round.items()},
    }


def _start_receiver(port: int, counted: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.receiver", str(port), "0", str(counted)]
    receiver = subprocess.Popen(command, cwd=ROOT)  # noqa: S603 - our own module
    wait_until(lambda: accepts(port), "the webhook receiver")
    return receiver


async def measure(
    workdir: Path, *, rounds: int, deliveries: int, concurrency: int = 8
) -> dict[str, Any]:
    """Run the comparison against a receiver started for it; return the per-round figures."""
    port = free_port()
    receiver = _start_receiver(port, workdir / "delivery-received.txt")
    try:
        return await _measure(f"http://127.0.0.1:{port}/hook", rounds, deliveries, concurrency)
    finally:
        receiver.terminate()
        receiver.wait(30)
