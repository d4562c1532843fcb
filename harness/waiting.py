"""Waiting for a process to get ready: poll a condition under a generous deadline."""

import time
from collections.abc import Callable

# Far longer than any machine needs to start one of these processes: reaching it is a failure.
READY_TIMEOUT_SECONDS = 60.0


def wait_until(
    ready: Callable[[], bool],
    what: str,
    *,
    timeout: float = READY_TIMEOUT_SECONDS,
    every: float = 0.05,
) -> None:
    """Poll `ready` until it holds; raise `TimeoutError` naming `what` after `timeout` s.

    `ready` may raise to give up early, for instance when the process it waits for exited.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not seen within {timeout:g} s")
        time.sleep(every)
