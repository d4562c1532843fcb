"""The admission gate: bounded waiting for hashing, refusal at once when the wait is too long.

No test here measures how long anything took. Holders keep their slot until the test lets
them go, the holding time is read from a clock the test advances, and where a refusal must
come "at once" the bound is an hour: a request that queued instead would never return
within the test's patience.
"""

import asyncio
import math
from collections.abc import Callable

import pytest

from api.domain.admission import AdmissionGate, Busy
from tests.clocks import PATIENCE_SECONDS, FakeClock

HOUR = 3600.0


async def _enter(gate: AdmissionGate, share: float = 1.0) -> None:
    async with gate.admitted(share):
        pass


async def _until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until `condition` holds; no clock involved."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the tasks never reached that state")


async def test_admits_up_to_its_slots_without_waiting() -> None:
    gate = AdmissionGate(slots=2, timeout=0.1)
    async with gate.admitted(), gate.admitted():
        assert gate.waiting == 0


async def test_a_queued_request_is_refused_when_its_wait_runs_out() -> None:
    gate = AdmissionGate(slots=1, timeout=0.05)
    loop = asyncio.get_running_loop()
    async with gate.admitted():  # held until the waiter has given up
        started = loop.time()
        waiter = asyncio.create_task(_enter(gate))
        await _until(lambda: gate.waiting == 1)  # queued: nothing was measured yet
        with pytest.raises(Busy):
            await asyncio.wait_for(waiter, PATIENCE_SECONDS)
        # It waited out its bound, on the event loop's clock that the bound runs on.
        assert loop.time() - started > 0.9 * gate.timeout
        assert gate.waiting == 0


async def test_a_request_that_could_not_start_in_time_is_refused_at_once() -> None:
    gate = AdmissionGate(slots=1, timeout=HOUR)
    gate.held_seconds = HOUR / 3  # measured: each holder keeps the slot 20 minutes
    async with gate.admitted():
        # Two queue: the second expects 2 x 20 min, within the bound with its margin (48 min).
        waiters = [asyncio.create_task(_enter(gate)) for _ in range(2)]
        await _until(lambda: gate.waiting == 2)
        # A third would expect 3 x 20 min: refused without queueing. Had it queued, it would
        # wait out the hour and the test's patience would end first.
        with pytest.raises(Busy):
            await asyncio.wait_for(_enter(gate), PATIENCE_SECONDS)
        assert gate.waiting == 2
    await asyncio.wait_for(asyncio.gather(*waiters), PATIENCE_SECONDS)


async def test_an_infinite_timeout_never_refuses() -> None:
    gate = AdmissionGate(slots=1, timeout=math.inf)
    gate.held_seconds = 10.0
    async with gate.admitted():
        waiter = asyncio.create_task(_enter(gate))
        await _until(lambda: gate.waiting == 1)  # queued, not refused
        assert not waiter.done()
    await asyncio.wait_for(waiter, PATIENCE_SECONDS)  # admitted once the slot is free


async def test_the_holding_time_is_learned() -> None:
    clock = FakeClock()
    gate = AdmissionGate(slots=1, timeout=1, clock=clock)
    async with gate.admitted():
        clock.advance(0.02)
    assert gate.held_seconds == pytest.approx(0.02)
    async with gate.admitted():
        clock.advance(0.12)
    # An exponential average: a fifth of the way from the estimate to the new measurement.
    assert gate.held_seconds == pytest.approx(0.02 + 0.2 * (0.12 - 0.02))


def test_the_default_queue_bound_is_one_second() -> None:
    from api.settings import Settings

    assert Settings.model_fields["hash_queue_timeout_seconds"].default == 1.0


async def test_new_work_gives_way_first() -> None:
    """With a queue, a create (half share) is refused where a reveal is still admitted."""
    gate = AdmissionGate(slots=1, timeout=HOUR)
    gate.held_seconds = HOUR / 5
    async with gate.admitted():
        waiters = [asyncio.create_task(_enter(gate)) for _ in range(2)]
        await _until(lambda: gate.waiting == 2)
        # Both would expect 3 x 12 min = 36 min: over half the bound with its margin (24 min).
        with pytest.raises(Busy):
            await asyncio.wait_for(_enter(gate, share=0.5), PATIENCE_SECONDS)
        # ... but within the whole bound with its margin (48 min): the reveal queues.
        reveal = asyncio.create_task(_enter(gate))
        await _until(lambda: gate.waiting == 3)
        assert not reveal.done()
    await asyncio.wait_for(asyncio.gather(*waiters, reveal), PATIENCE_SECONDS)
