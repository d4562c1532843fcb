"""Stop working for a client that has gone: its request is cancelled when it disconnects.

Starlette runs a handler to its end even when nobody waits for the answer. Past capacity
that means argon2 work for clients that gave up (and queued behind them, clients that did
not). Once the request body has been read, this middleware listens for the disconnect and
cancels the request: a request waiting for a hashing slot leaves the queue unhashed.
"""

import asyncio
import contextlib
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class CancelOnDisconnectMiddleware:
    """Cancels an HTTP request's handling when its client disconnects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; cancel it if the client goes away after sending its body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()
        disconnected = asyncio.Event()

        async def tracked_receive() -> Message:
            if disconnected.is_set():
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
            elif not message.get("more_body", False):
                body_read.set()
            return message

        async def handle() -> None:
            await self.app(scope, tracked_receive, send)

        handling = asyncio.create_task(handle())

        async def watch() -> None:
            await body_read.wait()
            # After the body, the next message can only be the disconnect.
            if (await receive())["type"] == "http.disconnect":
                disconnected.set()
                handling.cancel()
                logger.debug("the client disconnected: its request is cancelled")

        watcher = asyncio.create_task(watch())
        try:
            await handling
        except asyncio.CancelledError:
            if not disconnected.is_set():
                handling.cancel()  # cancelled from outside (shutdown): pass it on
                raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
