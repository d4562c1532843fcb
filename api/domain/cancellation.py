"""Steps that must finish even when the request waiting for them is cancelled.

A client that hangs up cancels its request at whatever `await` it has reached
(`api.http.disconnect`). Most steps can simply stop there, but some change state that a
second step must match: an attempt claimed must be given back or counted, a secret taken must
close its receipt. `run_to_end` runs such a step as a task of its own that a cancellation
does not reach; the cancellation goes on once the step (and its `undo`) has finished.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

_T = TypeVar("_T")

logger = logging.getLogger(__name__)


async def _wait_out(task: "asyncio.Future[_T]") -> None:
    # `asyncio.wait` leaves the task alone when the waiter is cancelled again (a second
    # hang-up notice, a shutdown): keep waiting, so the step is never cut in half.
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            continue


async def run_to_end(
    step: Awaitable[_T], *, undo: Callable[[_T], Awaitable[None]] | None = None
) -> _T:
    """Await `step` to its end even if the caller is cancelled meanwhile.

    If the caller was cancelled while `step` ran, `undo(result)` runs too (to its end), and
    then the cancellation is raised: a state change whose caller is gone is taken back.
    """
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await _wait_out(task)
        if undo is not None and _succeeded(task):
            undoing = asyncio.ensure_future(undo(task.result()))
            await _wait_out(undoing)
            if not _succeeded(undoing):
                logger.warning("a cancelled request's step could not be taken back")
        raise


def _succeeded(task: "asyncio.Future[_T]") -> bool:
    # Reading the exception also marks it retrieved: the caller sees the cancellation instead.
    return not task.cancelled() and task.exception() is None
