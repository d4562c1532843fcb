"""The protective headers of every response, and the middleware that adds them.

The middleware wraps every other but the WebSocket refusal; only a crash is answered outside
it, and that handler (`api.http.refusals`) takes `SECURITY_HEADERS` too. HTML pages add a
policy: `page_content_security_policy` for the docs and GraphiQL, `api.pages` its own.
"""

from types import MappingProxyType

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = MappingProxyType(
    {
        # Secrets stay out of browser and proxy caches.
        "cache-control": "no-store",
        # A browser never reads a JSON answer as a script.
        "x-content-type-options": "nosniff",
        # URLs hold secret keys: none leaks to another site.
        "referrer-policy": "no-referrer",
    }
)
_RAW_HEADERS = tuple((name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items())


def page_content_security_policy(*asset_origins: str) -> str:
    """Return the policy of an HTML page (docs, GraphiQL): it loads nothing from elsewhere.

    `asset_origins` may add where scripts and styles come from (a GraphiQL mirror). No page
    may be framed, post a form, or talk to any host but this one.
    """
    extra = "".join(f" {origin}" for origin in asset_origins)
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'unsafe-inline'{extra}",
            f"style-src 'self' 'unsafe-inline'{extra}",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "worker-src 'self' blob:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


class SecurityHeadersMiddleware:
    """Adds `SECURITY_HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through and decorate the response start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [header for header in _RAW_HEADERS if header[0] not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
