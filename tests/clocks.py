"""Time the tests control: a clock that moves only when told, and waiting for a condition.

A test's verdict must not depend on how fast the machine is. Code that reads a clock takes
one (`AdmissionGate(clock=…)`, `RateLimiter(settings, clock=…)`), and a test passes a `FakeClock`
that stands still until the test advances it. What a test must wait for in real time (a
process starting, a row appearing) it polls with `eventually`, under a deadline far longer
than any machine needs, so that only a real failure reaches it.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Long enough that no machine this suite runs on needs it: reaching it means a failure.
PATIENCE_SECONDS = 60.0


class FakeClock:
    """A clock that stands still until `advance`; it stands in for the `time` module too.

    Calling it, or its `time`, `monotonic` and `perf_counter`, reads the same instant, so
    one fake can replace every clock a piece of code reads.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    patience: float = PATIENCE_SECONDS,
    every: float = 0.05,
) -> T:
    """Poll `check` until it returns something other than None (or False); return that.

    Fails the test with `what` after `patience` seconds: a generous bound, not a measurement.
    """
    deadline = time.monotonic() + patience
    while True:
        found = await check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {patience:g} s")
        await asyncio.sleep(every)


def eventually_sync(
    check: Callable[[], T | None],
    what: str,
    *,
    patience: float = PATIENCE_SECONDS,
    every: float = 0.05,
) -> T:
    """`eventually` for code without an event loop."""
    deadline = time.monotonic() + patience
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {patience:g} s")
        time.sleep(every)
