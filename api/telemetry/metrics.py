"""Prometheus metrics: HTTP traffic by route template, domain events, and the live secrets.

- HTTP requests are counted and timed by method, **route template** and status; the raw path
  (which holds the secret key) is never a label, and an unrouted request is `unmatched`.
- Domain counters follow the events the service reports through `api.domain.events`.
- The live-secrets gauge is counted in the database when scraped, at most once every
  `LIVE_SECRETS_MAX_AGE_SECONDS` per process: one indexed `count(*)` per interval is cheap,
  and unlike a gauge kept in memory it is right across workers, machines and restarts.
  The storage-quota gauges (stored bytes and secrets, and how full each limit is) are read
  with it from the totals the writes keep (`api.storage.usage`).
- Creates with a creator token are counted by the token's **name** (operator-chosen, so the
  label set stays bounded); the token itself is never a label.

With several worker processes, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory before
start: every worker then writes its counters there and any worker's `/metrics` reports the sum.
Without it, each worker reports only its own counters.
"""

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from api.deps import Database, SettingsDep
from api.domain import events, notifications, service
from api.settings import Settings

logger = logging.getLogger(__name__)

LIVE_SECRETS_MAX_AGE_SECONDS = 15.0
LIVE_SECRETS_TIMEOUT_SECONDS = 2.0
_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
# Any other method a client invents is one label value, so the label set stays bounded.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

if _MULTIPROC_DIR:
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)
# `*_created` timestamps double the output and Prometheus's text format does not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]

HTTP_REQUESTS = Counter(
    "onetime_secrets_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "onetime_secrets_http_request_duration_seconds",
    "Time from receiving an HTTP request to the end of its response, by route template.",
    ["method", "route"],
)
DOMAIN_EVENTS: dict[str, Counter] = {
    events.CREATED: Counter("onetime_secrets_secrets_created", "Secrets stored."),
    events.REVEALED: Counter(
        "onetime_secrets_secrets_revealed", "Secrets revealed once and deleted."
    ),
    events.BURNED: Counter(
        "onetime_secrets_secrets_burned", "Secrets destroyed unread by a holder of the key."
    ),
    events.REVOKED: Counter(
        "onetime_secrets_secrets_revoked", "Secrets destroyed unread by their sender's receipt."
    ),
    events.PURGED: Counter(
        "onetime_secrets_secrets_expired_purged", "Expired secrets deleted by the purge task."
    ),
    events.FAILED_ATTEMPT: Counter(
        "onetime_secrets_failed_passphrase_attempts",
        "Wrong passphrases tried against a stored secret (unknown keys are not counted).",
    ),
    events.REFUSED_AT_CAPACITY: Counter(
        "onetime_secrets_refused_at_capacity",
        "Requests refused (503) because their hashing could not start within "
        "HASH_QUEUE_TIMEOUT_SECONDS.",
    ),
    events.DESTROYED_BY_ATTEMPT_LIMIT: Counter(
        "onetime_secrets_secrets_destroyed_by_attempt_limit",
        "Secrets deleted because MAX_FAILED_ATTEMPTS wrong passphrases were tried.",
    ),
    events.REFUSED_STORAGE_QUOTA: Counter(
        "onetime_secrets_refused_storage_quota",
        "Creates refused (507) because the store would pass MAX_STORED_BYTES or MAX_LIVE_SECRETS.",
    ),
    events.REFUSED_UNAUTHENTICATED: Counter(
        "onetime_secrets_refused_unauthenticated",
        "Creates refused (401) in token mode: no token, or an unknown or revoked one.",
    ),
    events.NOTIFICATION_DELIVERED: Counter(
        "onetime_secrets_notifications_delivered", "Notifications their receiver accepted (2xx)."
    ),
    events.NOTIFICATION_RETRIED: Counter(
        "onetime_secrets_notifications_retried",
        "Notification attempts that failed and will be tried again.",
    ),
    events.NOTIFICATION_FAILED: Counter(
        "onetime_secrets_notifications_failed",
        "Notifications given up: refused, or not delivered within WEBHOOK_RETRY_HOURS.",
    ),
}
CREATED_WITH_TOKEN = Counter(
    "onetime_secrets_secrets_created_with_token",
    "Secrets stored with a creator token, by the token's name.",
    ["token"],
)


def _count_event(event: str, count: int, label: str | None) -> None:
    if event == events.CREATED_WITH_TOKEN and label is not None:
        CREATED_WITH_TOKEN.labels(label).inc(count)
        return
    counter = DOMAIN_EVENTS.get(event)
    if counter is not None:
        counter.inc(count)


@lru_cache(maxsize=1024)  # a bounded set: methods x route templates x statuses
def _request_series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_DURATION.labels(method, route)


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count and time one answered HTTP request under its route template."""
    method = method if method in _KNOWN_METHODS else "other"
    requests, duration = _request_series(method, route, status)
    requests.inc()
    duration.observe(seconds)


class LiveSecrets:
    """The number of live secrets, counted when scraped and cached for a short while.

    How full the store is, is reported against the quota of `settings`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        max_age_seconds: float = LIVE_SECRETS_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._value: int | None = None
        self._usage: tuple[int, int] | None = None
        self._oldest_pending: float | None = None
        self._counted_at = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self, db: Database) -> None:
        """Count again if the cached count is missing or older than `max_age_seconds`."""
        async with self._lock:  # concurrent scrapes share one count
            if self._value is not None and self.clock() - self._counted_at < self.max_age_seconds:
                return
            try:
                async with asyncio.timeout(LIVE_SECRETS_TIMEOUT_SECONDS):
                    self._value = await service.count_live(db=db)
                    self._usage = await service.storage_usage(db=db)
                    self._oldest_pending = await notifications.oldest_pending_age(db=db)
                self._counted_at = self.clock()
            except Exception as exc:  # a scrape must still answer while the database is down
                logger.warning("could not count live secrets: %s", type(exc).__name__)
                self._value = self._usage = self._oldest_pending = None

    def collect(self) -> Iterator[Metric]:
        """Yield the gauge; nothing while the count is unknown, so it shows as absent."""
        if self._value is None:
            return
        gauge = GaugeMetricFamily(
            "onetime_secrets_live_secrets",
            "Secrets stored and not yet expired (counted at most every "
            f"{self.max_age_seconds:g} s per process).",
        )
        gauge.add_metric([], self._value)
        yield gauge
        if self._oldest_pending is not None:
            oldest = GaugeMetricFamily(
                "onetime_secrets_notifications_oldest_pending_seconds",
                "Age of the oldest notification not yet delivered nor given up (0: none).",
            )
            oldest.add_metric([], self._oldest_pending)
            yield oldest
        if self._usage is None:
            return
        stored_bytes, stored_secrets = self._usage
        settings = self.settings
        for name, help_text, value in (
            ("stored_bytes", "Ciphertext bytes stored, expired secrets included.", stored_bytes),
            ("stored_secrets", "Secrets stored, expired ones included.", stored_secrets),
        ):
            stored = GaugeMetricFamily(f"onetime_secrets_{name}", help_text)
            stored.add_metric([], value)
            yield stored
        full = GaugeMetricFamily(
            "onetime_secrets_storage_quota_used_ratio",
            "How full the store is against MAX_STORED_BYTES and MAX_LIVE_SECRETS "
            "(1 = creates are refused).",
            labels=["limit"],
        )
        full.add_metric(["bytes"], stored_bytes / settings.max_stored_bytes)
        full.add_metric(["secrets"], stored_secrets / settings.max_live_secrets)
        yield full


class _Scrape:
    """What one scrape reports: the process (or multi-process) registry plus the live gauge."""

    def __init__(self, *collectors: Collector) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def _counters_registry() -> Collector:
    if not _MULTIPROC_DIR:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=_MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    return registry


metrics_router = APIRouter()


def _authorized(request: Request, settings: Settings) -> bool:
    token = settings.metrics_token
    if token is None:
        return True
    expected = f"Bearer {token.get_secret_value()}".encode()
    given = request.headers.get("authorization", "").encode()
    return hmac.compare_digest(given, expected)


@metrics_router.get("/metrics", include_in_schema=False)
async def scrape(request: Request, settings: SettingsDep) -> Response:
    """Report every metric in the Prometheus (or OpenMetrics, if asked for) text format."""
    if not _authorized(request, settings):
        return Response(
            content='{"detail":"Not authenticated"}',
            status_code=401,
            headers={"content-type": "application/json", "www-authenticate": "Bearer"},
        )
    live: LiveSecrets = request.app.state.live_secrets
    await live.refresh(request.app.state.database)
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    body = encode(_Scrape(_counters_registry(), live))
    return Response(content=body, headers={"content-type": content_type})


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Add `GET /metrics` to `app` and start counting domain events."""
    events.subscribe(_count_event)
    app.state.live_secrets = LiveSecrets(settings)
    app.include_router(metrics_router)
