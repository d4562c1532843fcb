"""Notifications across processes: a crash loses none, and two instances send each once.

Real uvicorn processes, real receivers on 127.0.0.1 (`tests/receivers`). The notifier runs
in each server as it does in production; the tests wait on what the receivers got and on
the receipts, never on a guessed delay.
"""

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from api.settings import Settings
from api.storage.database import Database, create_engine
from api.storage.statements import notification_columns, notifications_table
from harness.ports import free_port
from harness.uvicorn import Uvicorn
from models import StoredNotificationState
from tests.clocks import eventually_sync
from tests.conftest import create_pg_database, drop_pg_database
from tests.receivers import receiving
from tests.system.servers import run_server

SIGNING_SECRET = "whsec_" + "cHJvY2Vzc2VzLXRlc3Qtc2lnbmluZy1zZWNyZXQtMTIzNA=="
PASSPHRASE = "processes-passphrase"
NOTIFYING = {
    "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "WEBHOOK_ALLOW_HTTP": "true",
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_SIGNING_SECRET": SIGNING_SECRET,
    "WEBHOOK_POLL_SECONDS": "0.2",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
    # An attempt's bound, and so the lease a crashed sender leaves (twice that): short here.
    "WEBHOOK_TIMEOUT_SECONDS": "3",
}


def _server(database_url: str, log: Path, **env: str) -> contextlib.AbstractContextManager[Uvicorn]:
    return run_server({**NOTIFYING, "DATABASE_URL": database_url, "SERVER_LOG": str(log), **env})


def _create_and_reveal(base_url: str, notify_url: str, number: int = 0) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        body = {"secret": f"notified {number}", "passphrase": PASSPHRASE, "notify_url": notify_url}
        created = http.post("/generate", json=body)
        assert created.status_code == 200, created.text
        keys: dict[str, Any] = created.json()
        revealed = http.post(f"/secrets/{keys['secret_key']}", json={"passphrase": PASSPHRASE})
        assert revealed.status_code == 200, revealed.text
    return keys


def _notification(base_url: str, keys: dict[str, Any]) -> str:
    response = httpx.get(f"{base_url}/receipts/{keys['receipt_key']}", timeout=30)
    assert response.status_code == 200, response.text
    status: str = response.json()["notification"]
    return status


def _delivered(base_url: str, keys: dict[str, Any]) -> None:
    eventually_sync(
        lambda: _notification(base_url, keys) == "delivered", "the receipt says delivered"
    )


def test_a_crash_right_after_the_reveal_delays_the_notification_only(
    module_database_url: str, tmp_path: Path
) -> None:
    port = free_port()  # the receiver is down when the reveal commits
    notify_url = f"http://127.0.0.1:{port}/hook"
    with _server(module_database_url, tmp_path / "first.log") as first:
        keys = _create_and_reveal(first.url, notify_url)
        first.kill()  # -9: no shutdown, whatever it was doing
    with receiving(port=port) as receiver:
        with _server(module_database_url, tmp_path / "again.log") as again:
            _delivered(again.url, keys)
        (delivery,) = receiver.deliveries  # once: recorded as delivered, never sent again
    assert delivery.verified(SIGNING_SECRET)["public_id"] == keys["public_id"]


async def _lease_runs_out(database_url: str) -> None:
    """Move every claimed notification's lease into the past, as time would."""
    database = Database(create_engine(Settings(database_url=database_url)))
    try:
        await database.execute(
            update(notifications_table)
            .where(notification_columns.state == StoredNotificationState.PENDING.value)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    finally:
        await database.aclose()


async def test_a_sender_killed_mid_delivery_sends_it_again_with_the_same_id(
    module_database_url: str, tmp_path: Path
) -> None:
    with receiving(stall_first=True) as receiver:
        # An attempt may take a minute here, so the kill, not a timeout, ends the first one.
        slow = {"WEBHOOK_TIMEOUT_SECONDS": "60"}
        with _server(module_database_url, tmp_path / "first.log", **slow) as first:
            keys = _create_and_reveal(first.url, receiver.url())
            assert receiver.stalled.wait(60), "the first delivery never came"
            # A reveal never waits for a delivery: one goes through while this one hangs.
            other = _create_and_reveal(first.url, receiver.url("/other"), number=1)
            assert other["public_id"] != keys["public_id"]
            first.kill()  # -9: no shutdown, whatever it was doing
            assert "delivered" not in first.log()  # no outcome was recorded
        receiver.release.set()
        await _lease_runs_out(module_database_url)  # its lease was four minutes
        with _server(module_database_url, tmp_path / "again.log") as again:
            _delivered(again.url, keys)
            _delivered(again.url, other)
    ours = [d for d in receiver.deliveries if d.path == "/hook"]
    # At least once: the attempt the crash cut off, then the one after its lease ran out,
    # both under one webhook-id, so the receiver can drop the repeat.
    assert len(ours) == 2
    assert {d.headers["webhook-id"] for d in ours} == {f"msg_{keys['public_id']}"}
    for delivery in ours:
        assert delivery.verified(SIGNING_SECRET)["type"] == "secret.revealed"


NOTIFICATIONS = 100


@pytest.mark.postgres
async def test_two_instances_deliver_each_notification_exactly_once(tmp_path: Path) -> None:
    database_url = await create_pg_database()
    try:
        with (
            receiving() as receiver,
            _server(database_url, tmp_path / "one.log") as one,
            _server(database_url, tmp_path / "two.log") as two,
        ):
            urls = [one.url, two.url]
            created = [
                _create_and_reveal(urls[number % 2], receiver.url(), number)
                for number in range(NOTIFICATIONS)
            ]
            receiver.wait_for(NOTIFICATIONS)
            for number, keys in enumerate(created):
                _delivered(urls[(number + 1) % 2], keys)
            sent_by = [server.log().count("delivered (attempt") for server in (one, two)]
            print(f"notifications delivered by each instance: {sent_by}")
        ids = [delivery.headers["webhook-id"] for delivery in receiver.deliveries]
        assert len(ids) == NOTIFICATIONS
        assert set(ids) == {f"msg_{keys['public_id']}" for keys in created}
    finally:
        await drop_pg_database(database_url)
