"""WebSockets are not part of this API: every upgrade is refused before any route runs.

Strawberry would offer its subscription protocols at `/graphql`; the schema has no
subscriptions, and a handshake path may carry a key and a passphrase in its query string.
The refusal is a plain `403` (a close before accepting). It is logged as one fixed access
line, `WEBSOCKET refused 403`: no route matched, and the path may hold a key.
"""

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

access_logger = logging.getLogger("api.access")


class RefuseWebSocketsMiddleware:
    """Answers every WebSocket handshake with 403; passes everything else through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a WebSocket scope; run the application for any other."""
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        await send({"type": "websocket.close", "code": 1008})
        access_logger.info("WEBSOCKET refused 403")
