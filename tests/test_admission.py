"""The admission gate: bounded waiting for hashing, refusal at once when the wait is too long."""

import asyncio
import math
import time

import pytest

from api.domain.admission import AdmissionGate, Busy


async def test_admits_up_to_its_slots_without_waiting() -> None:
    gate = AdmissionGate(slots=2, timeout=0.1)
    async with gate.admitted(), gate.admitted():
        assert gate.waiting == 0


async def test_a_queued_request_is_refused_when_its_wait_runs_out() -> None:
    gate = AdmissionGate(slots=1, timeout=0.05)
    async with gate.admitted():
        started = time.perf_counter()
        with pytest.raises(Busy):
            async with gate.admitted():
                pass
        assert 0.04 < time.perf_counter() - started < 0.5


async def test_a_request_that_could_not_start_in_time_is_refused_at_once() -> None:
    gate = AdmissionGate(slots=1, timeout=0.6)
    gate.held_seconds = 0.2  # measured: each holder keeps the slot 0.2 s
    async with gate.admitted():
        waiters = [asyncio.create_task(_enter_and_hold(gate, 0.2)) for _ in range(2)]
        await asyncio.sleep(0.01)
        # A third would expect 3 x 0.2 s: more than the bound with its margin (0.45 s).
        assert gate.waiting == 2
        started = time.perf_counter()
        with pytest.raises(Busy):
            async with gate.admitted():
                pass
        assert time.perf_counter() - started < 0.05
    await asyncio.gather(*waiters, return_exceptions=True)


async def _enter_and_hold(gate: AdmissionGate, seconds: float) -> None:
    async with gate.admitted():
        await asyncio.sleep(seconds)


async def test_an_infinite_timeout_never_refuses() -> None:
    gate = AdmissionGate(slots=1, timeout=math.inf)
    gate.held_seconds = 10.0
    async with gate.admitted():
        waiter = asyncio.create_task(_enter_and_hold(gate, 0))
        await asyncio.sleep(0.05)
        assert not waiter.done()
    await waiter


async def test_the_holding_time_is_learned() -> None:
    gate = AdmissionGate(slots=1, timeout=1)
    await _enter_and_hold(gate, 0.02)
    assert gate.held_seconds is not None
    assert 0.015 < gate.held_seconds < 0.2


def test_the_default_queue_bound_is_one_second() -> None:
    from api.settings import Settings

    assert Settings.model_fields["hash_queue_timeout_seconds"].default == 1.0


async def test_new_work_gives_way_first() -> None:
    """With a queue, a create (half share) is refused where a reveal is still admitted."""
    gate = AdmissionGate(slots=1, timeout=1.0)
    gate.held_seconds = 0.2
    async with gate.admitted():
        waiters = [asyncio.create_task(_enter_and_hold(gate, 0.01)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(Busy):  # expects 0.6 s, over half the bound with margin
            async with gate.admitted(share=0.5):
                pass
        reveal = asyncio.create_task(_enter_and_hold(gate, 0.01))  # 0.6 s is within 0.75 s
        await asyncio.sleep(0.01)
        assert not reveal.done()
    await asyncio.gather(*waiters, reveal)
