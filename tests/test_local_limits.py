"""The lock-free in-memory rate-limit storage decides exactly as `limits`' own would."""

import random
import time

import pytest
from limits import parse, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from api.local_limits import SWEEP_EVERY_SECONDS, LocalWindowStorage


class Clock:
    """A `time.time` that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1_800_000_000.25)
    monkeypatch.setattr(time, "time", fake)
    return fake


@pytest.mark.parametrize("limit", ["5/second", "7/minute", "3/second;12/minute"])
async def test_same_verdicts_and_window_stats_as_limits_memory_storage(
    clock: Clock, limit: str
) -> None:
    items = parse_many(limit)
    ours = SlidingWindowCounterRateLimiter(LocalWindowStorage())
    theirs = SlidingWindowCounterRateLimiter(MemoryStorage())
    steps = random.Random(7)
    allowed = 0
    for _ in range(600):
        clock.now += steps.choice([0.0, 0.01, 0.05, 0.2, 0.7, 1.3])
        client = steps.choice(["a", "b"])
        cost = steps.choice([1, 1, 1, 2])
        for item in items:
            verdict = await ours.hit(item, client, cost=cost)
            assert verdict == await theirs.hit(item, client, cost=cost)
            allowed += verdict
            ours_stats = await ours.get_window_stats(item, client)
            theirs_stats = await theirs.get_window_stats(item, client)
            assert ours_stats.remaining == theirs_stats.remaining
            assert ours_stats.reset_time == pytest.approx(theirs_stats.reset_time)
    assert 0 < allowed < 600 * len(items)  # both outcomes were exercised


async def test_refuses_a_cost_above_the_limit(clock: Clock) -> None:
    limiter = SlidingWindowCounterRateLimiter(LocalWindowStorage())
    assert not await limiter.hit(parse("3/second"), "a", cost=4)
    assert await limiter.hit(parse("3/second"), "a", cost=3)


async def test_clients_that_stop_calling_are_forgotten(clock: Clock) -> None:
    storage = LocalWindowStorage()
    limiter = SlidingWindowCounterRateLimiter(storage)
    item = parse("5/second")
    for client in ("a", "b", "c"):
        assert await limiter.hit(item, client)
    assert len(storage._windows) == 3
    clock.now += SWEEP_EVERY_SECONDS + 3
    assert await limiter.hit(item, "d")
    assert list(storage._windows) == [item.key_for("d")]
