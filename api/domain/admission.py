"""Admission control for the hashing work: refuse at once what could not start in time.

Every create and every passphrase check costs one argon2id evaluation, a few dozen
milliseconds of a core. Past capacity an unbounded queue only makes every request slower
while the service hashes for clients that have given up. So each process admits at most
`workers` evaluations at once and queues the rest for at most `HASH_QUEUE_TIMEOUT_SECONDS`:

- A request that would have to wait longer than that, judged from the queue ahead of it and
  the measured time a slot is held, is refused at once (`Busy`), before any state changes:
  a refused create stores nothing, a refused reveal or burn claims no attempt.
- One admitted but still waiting when the timeout passes is refused then (the estimate was
  wrong: a slow core); a reveal gives back the attempt it had claimed meanwhile.
- New work gives way first: a create may expect 3/4 of the wait a reveal may, so past capacity
  the service finishes the cycles it has started rather than starting more it cannot finish.
- `HASH_QUEUE_TIMEOUT_SECONDS=inf` turns the bound off (an unbounded queue).
"""

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable

# How fast the estimate of a slot's holding time follows changes (an exponential average).
_SMOOTHING = 0.2
# Admit only when the estimated wait is this far inside the bound: an estimate is an average,
# and a request admitted on it that then waits out the whole bound is a slow refusal.
_MARGIN = 0.8


class Busy(Exception):
    """The hashing work of this request could not start within HASH_QUEUE_TIMEOUT_SECONDS."""


class AdmissionGate:
    """Admits at most `slots` holders at once; queues others for at most `timeout` seconds.

    `clock` times how long a slot is held (a test passes a clock it advances itself).
    """

    def __init__(
        self, *, slots: int, timeout: float, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.slots = slots
        self.timeout = timeout
        self._clock = clock
        self._semaphore = asyncio.Semaphore(slots)
        self.waiting = 0
        self.held_seconds: float | None = None  # the smoothed time a slot is held

    def _expected_wait(self) -> float:
        if self.held_seconds is None:
            return 0.0
        # Everyone queued ahead, and this request, share `slots` slots in turn.
        return (self.waiting + 1) * self.held_seconds / self.slots

    def would_refuse(self, share: float = 1.0) -> bool:
        """Whether a request of this `share` arriving now would be refused at once."""
        return (
            self._semaphore.locked()
            and math.isfinite(self.timeout)
            and self._expected_wait() > self.timeout * share * _MARGIN
        )

    @contextlib.asynccontextmanager
    async def admitted(self, share: float = 1.0) -> AsyncIterator[None]:
        """Hold a slot for the block; raise `Busy` if none frees up in time.

        `share` of the bound is what this request may expect to wait: a smaller share gives
        way first when the queue grows (creates give way to reveals, which finish work
        already paid for).
        """
        if self._semaphore.locked():
            if self.would_refuse(share):
                raise Busy
            self.waiting += 1
            try:
                async with asyncio.timeout(self.timeout if math.isfinite(self.timeout) else None):
                    await self._semaphore.acquire()
            except TimeoutError:
                raise Busy from None
            finally:
                self.waiting -= 1
        else:
            await self._semaphore.acquire()
        started = self._clock()
        try:
            yield
        finally:
            self._semaphore.release()
            held = self._clock() - started
            previous = self.held_seconds
            self.held_seconds = (
                held if previous is None else previous + _SMOOTHING * (held - previous)
            )
