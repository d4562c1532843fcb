"""The application factory: wires settings, storage, the two doors and background work."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from api.access.rate_limits import RateLimiter
from api.domain.hashing import PassphraseHasher
from api.domain.notifications import Notifier
from api.domain.purge import purge_forever
from api.domain.service import CREATE_SHARE
from api.gql import error_responses as gql_errors
from api.gql.context import get_context
from api.gql.router import SafeGraphQLRouter
from api.gql.schema import build_schema
from api.http.body_limit import RequestBodyLimitMiddleware
from api.http.disconnect import CancelOnDisconnectMiddleware
from api.http.head import HeadAsGetMiddleware
from api.http.header_limit import RequestHeaderLimitMiddleware
from api.http.refusals import ErrorShapes, install_error_handlers
from api.http.security_headers import SecurityHeadersMiddleware
from api.http.shedding import ShedAtCapacityMiddleware, shed_routes
from api.http.websocket import RefuseWebSocketsMiddleware
from api.pages.routes import pages_router
from api.rest import error_responses as rest_errors
from api.rest import receipts as rest_receipts
from api.rest.docs import install_offline_docs
from api.rest.routes import burn, generate, reveal_by_body, reveal_by_query, router
from api.settings import Settings
from api.storage.database import Database, create_engine
from api.storage.migrations import migrate
from api.telemetry.logs import RequestLogMiddleware, configure_logging
from api.telemetry.metrics import install_metrics, record_request

GRAPHQL_PATH = "/graphql"
# The REST routes that hash, with the share of the admission bound the service gives each (a
# check takes the gate's default, 1.0): past capacity they are refused before routing.
HASHING_ROUTES: dict[Callable[..., Any], float] = {
    generate: CREATE_SHARE,
    reveal_by_query: 1.0,
    reveal_by_body: 1.0,
    burn: 1.0,
}
DESCRIPTION = """
Share a secret that can be read **exactly once**.

1. `POST /generate` with the secret and a passphrase returns a `secret_key`.
2. Send the key to the reader, and the passphrase by another channel.
3. The reader calls `POST /secrets/{secret_key}` with the passphrase and gets the secret;
   it is deleted in the same transaction. Every later call answers `404`.

The same service is available as GraphQL at `/graphql`.
"""


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database, build the hasher, migrate, start purging and notifying; undo it."""
    settings: Settings = app.state.settings
    database = Database(create_engine(settings))
    app.state.database = database
    # Built here, so its dummy hash is made at start-up rather than on the first request.
    app.state.hasher = PassphraseHasher.from_settings(settings)
    if settings.auto_migrate:
        await migrate(settings)
    background = [
        asyncio.create_task(
            purge_forever(
                database,
                interval_seconds=settings.purge_interval_seconds,
                batch_size=settings.purge_batch_size,
                pause_seconds=settings.purge_pause_seconds,
                notify_window=timedelta(hours=settings.webhook_retry_hours),
            )
        )
    ]
    if settings.notifications_on:
        background.append(asyncio.create_task(Notifier(database, settings).run()))
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await database.aclose()
        await app.state.rate_limiter.aclose()


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI application from `settings`, which every part of it is given.

    Request-time code reaches them as `app.state.settings` (`api.deps.SettingsDep`).
    """
    configure_logging(settings)
    app = FastAPI(
        title="One-time secrets",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's OpenTelemetry spans and logs would record request URLs (a passphrase in
        # the query string) and exception messages, if a provider were ever configured;
        # off, they also cost nothing per request. `/metrics` is the telemetry here.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # Served by install_offline_docs instead, from local files rather than a CDN; with
        # API_DOCS off (production's default), none of the three is served.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs else None,
        # A redirect to the path without its trailing slash would repeat the key and the
        # query string (a passphrase) in `Location`: such paths are simply unknown (404).
        redirect_slashes=False,
    )
    app.state.settings = settings
    # Refusals that no route makes answer in the shape of the door the path belongs to.
    shapes = ErrorShapes(
        default=rest_errors.error_response, by_prefix={GRAPHQL_PATH: gql_errors.error_response}
    )
    # Middleware: the last added runs first (outermost).
    # The body and header limits sit inside the headers, so their 413 and 431 carry them too;
    # HEAD runs as GET around them, so the bodies of those answers go as well.
    app.add_middleware(RequestBodyLimitMiddleware, shapes=shapes, settings=settings)
    app.add_middleware(RequestHeaderLimitMiddleware, shapes=shapes, settings=settings)
    app.add_middleware(HeadAsGetMiddleware, shapes=shapes)
    # No work for a client that has gone (hashing above all); inside the log, so it shows.
    app.add_middleware(CancelOnDisconnectMiddleware)
    # Around all of the above, so every response, a 413 or 429 too, is counted and logged.
    app.add_middleware(RequestLogMiddleware, observers=[record_request] if settings.metrics else [])
    # Past capacity, REST refusals cost nothing but the refusal: no routing, no body, not even
    # a request id or an access line; the refusal counter counts them. The REST router is
    # included without a prefix, so its routes' paths are the app's.
    app.add_middleware(
        ShedAtCapacityMiddleware, shapes=shapes, routes=shed_routes(router.routes, HASHING_ROUTES)
    )
    # Around everything that answers but a crash (`install_error_handlers` adds them to that).
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RefuseWebSocketsMiddleware)

    install_error_handlers(app, shapes)
    rest_errors.install_error_handlers(app)
    app.state.rate_limiter = RateLimiter(settings)

    # The REST door.
    app.include_router(router)
    app.include_router(rest_receipts.router)
    install_offline_docs(app)
    # The GraphQL door.
    graphql_router = SafeGraphQLRouter(
        build_schema(settings),
        # The path on the routes themselves (not an include prefix), so the route in the
        # scope names it for logs and metrics.
        path=GRAPHQL_PATH,
        context_getter=get_context,
        graphql_ide="graphiql" if settings.graphiql else None,
        include_in_schema=False,
        assets_url=settings.graphiql_assets_url,
        subscription_protocols=(),  # no subscriptions; upgrades are refused outright anyway
    )
    app.include_router(graphql_router, include_in_schema=False)
    if settings.graphiql:
        app.include_router(graphql_router.assets_router)
    if settings.metrics:
        install_metrics(app, settings)
    # The pages for people.
    if settings.web_ui:
        app.include_router(pages_router(settings))
    return app
