"""GET /metrics: request metrics by route template, domain counters, the live gauge, no secrets."""

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from api.app import create_app
from api.domain import crypto, service
from api.domain.purge import purge_expired
from api.settings import Settings
from api.storage.database import Database, create_engine
from api.storage.statements import secret_columns, secrets_table
from api.telemetry.logs import UNMATCHED
from api.telemetry.metrics import LiveSecrets

CANARY_SECRET = "canary-secret-3f1c9e"
CANARY_PASSPHRASE = "canary-passphrase-8b2d71"


def samples(text: str) -> Iterator[Any]:
    for family in text_string_to_metric_families(text):
        yield from family.samples


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels (0 when it does not exist yet)."""
    for sample in samples(text):
        if sample.name == name and sample.labels == labels:
            return float(sample.value)
    return 0.0


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def create(client: httpx.AsyncClient) -> str:
    body = {"secret": CANARY_SECRET, "passphrase": CANARY_PASSPHRASE}
    response = await client.post("/generate", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["secret_key"])


async def test_counters_move_and_no_secret_reaches_metrics(
    client: httpx.AsyncClient, configure: Any
) -> None:
    configure(MAX_FAILED_ATTEMPTS="2")
    before = await scrape(client)

    revealed, burned, guessed = [await create(client) for _ in range(3)]
    assert (
        await client.get(f"/secrets/{revealed}", params={"passphrase": CANARY_PASSPHRASE})
    ).status_code == 200
    assert (
        await client.delete(f"/secrets/{burned}", params={"passphrase": CANARY_PASSPHRASE})
    ).status_code == 204
    for _ in range(2):
        wrong = await client.post(f"/secrets/{guessed}", json={"passphrase": "wrong"})
        assert wrong.status_code == 404
    # Unknown keys, unknown paths and made-up methods: none may put the raw path in a label.
    unknown = await client.post(f"/secrets/{'0' * 32}", json={"passphrase": CANARY_PASSPHRASE})
    assert unknown.status_code == 404
    assert (await client.get(f"/nowhere/{revealed}/{CANARY_PASSPHRASE}")).status_code == 404
    assert (await client.request("BREW", f"/secrets/{guessed}")).status_code == 405

    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("onetime_secrets_secrets_created_total") == 3
    assert delta("onetime_secrets_secrets_revealed_total") == 1
    assert delta("onetime_secrets_secrets_burned_total") == 1
    # The unknown key costs a hash check but is no attempt against a stored secret.
    assert delta("onetime_secrets_failed_passphrase_attempts_total") == 2
    assert delta("onetime_secrets_secrets_destroyed_by_attempt_limit_total") == 1

    requests = "onetime_secrets_http_requests_total"
    secret_route = "/secrets/{secret_key}"
    assert delta(requests, method="POST", route="/generate", status="200") == 3
    assert delta(requests, method="GET", route=secret_route, status="200") == 1
    assert delta(requests, method="DELETE", route=secret_route, status="204") == 1
    assert delta(requests, method="POST", route=secret_route, status="404") == 3
    assert delta(requests, method="GET", route=UNMATCHED, status="404") == 1
    assert delta(requests, method="other", route=secret_route, status="405") == 1
    assert delta(requests, method="GET", route="/metrics", status="200") == 1
    duration = "onetime_secrets_http_request_duration_seconds_count"
    assert delta(duration, method="POST", route="/generate") == 3

    routes = {s.labels["route"] for s in samples(after) if "route" in s.labels}
    assert {"/generate", "/secrets/{secret_key}", "/metrics", UNMATCHED} <= routes
    assert not [route for route in routes if re.search("[0-9a-f]{32}|nowhere", route)]
    for canary in (revealed, burned, guessed, CANARY_SECRET, CANARY_PASSPHRASE):
        assert canary not in after


async def test_purged_secrets_are_counted(client: httpx.AsyncClient, db: Database) -> None:
    key = await create(client)
    expired = time.time() - 3600
    async with db.engine.begin() as connection:
        await connection.execute(
            update(secrets_table)
            .where(secret_columns.lookup_hash == crypto.lookup_hash(key))
            .values(expires_at=datetime.fromtimestamp(expired, UTC))
        )
    before = await scrape(client)
    purged = await purge_expired(db=db, batch_size=100)
    after = await scrape(client)
    assert purged >= 1
    name = "onetime_secrets_secrets_expired_purged_total"
    assert value(after, name) - value(before, name) == purged


async def test_live_gauge_is_counted_at_scrape_and_cached(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    frozen_now: datetime,  # no earlier test's secret expires between the scrapes
) -> None:
    live: LiveSecrets = app.state.live_secrets
    now = time.monotonic() + 10 * live.max_age_seconds  # whatever was cached is stale
    monkeypatch.setattr(live, "clock", lambda: now)

    first = value(await scrape(client), "onetime_secrets_live_secrets")
    assert first == await service.count_live(db=db)

    await create(client)
    cached = value(await scrape(client), "onetime_secrets_live_secrets")
    assert cached == first  # no second count inside the cache window

    now += live.max_age_seconds
    assert value(await scrape(client), "onetime_secrets_live_secrets") == first + 1


async def test_live_gauge_is_absent_while_the_database_fails(app: FastAPI, tmp_path: Path) -> None:
    unreachable = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/no/such.db"))
    live = LiveSecrets(app.state.settings)
    try:
        await live.refresh(Database(unreachable))
    finally:
        await unreachable.dispose()
    assert list(live.collect()) == []  # absent, not a stale or made-up number

    await live.refresh(app.state.database)  # an unknown count is not cached
    gauges = {gauge.name: gauge for gauge in live.collect()}
    assert gauges["onetime_secrets_live_secrets"].samples[0].value >= 0
    assert set(gauges) == {
        "onetime_secrets_live_secrets",
        "onetime_secrets_stored_bytes",
        "onetime_secrets_stored_secrets",
        "onetime_secrets_storage_quota_used_ratio",
        # Whether or not notifications are on: rows an instance no longer sends show here.
        "onetime_secrets_notifications_oldest_pending_seconds",
    }


async def test_metrics_are_out_of_openapi(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/metrics" not in spec["paths"]


async def test_metrics_false_removes_the_route(app: FastAPI, configure: Any) -> None:
    quiet = create_app(configure(METRICS="false"))
    transport = httpx.ASGITransport(app=quiet)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/metrics")
    assert response.status_code == 404


async def test_revokes_are_counted_and_receipt_keys_never_labelled(
    client: httpx.AsyncClient,
) -> None:
    body = {"secret": CANARY_SECRET, "passphrase": CANARY_PASSPHRASE}
    receipt_key = (await client.post("/generate", json=body)).json()["receipt_key"]
    before = await scrape(client)
    assert (await client.delete(f"/receipts/{receipt_key}")).json()["status"] == "revoked"
    assert (await client.delete(f"/receipts/{receipt_key}")).status_code == 200  # no-op
    after = await scrape(client)
    name = "onetime_secrets_secrets_revoked_total"
    assert value(after, name) - value(before, name) == 1
    assert receipt_key not in after
    assert (
        value(
            after,
            "onetime_secrets_http_requests_total",
            method="DELETE",
            route="/receipts/{receipt_key}",
            status="200",
        )
        >= 2
    )


async def test_unknown_paths_under_a_mount_share_one_label(client: httpx.AsyncClient) -> None:
    """Each distinct path under the static mount must not become a series of its own."""
    await client.get("/docs-assets/nope.js")
    await scrape(client)
    before = len(await scrape(client))  # every series that the loop below touches exists
    for number in range(2000):
        await client.get(f"/docs-assets/nope-{number}.js")
    text = await scrape(client)
    assert "nope-" not in text
    assert len(text) - before < 300  # only counter values grew a digit or two
    requests = "onetime_secrets_http_requests_total"
    assert value(text, requests, method="GET", route=UNMATCHED, status="404") >= 2000
