"""Notifications: every ending of a secret tells its sender once, signed, retried, on time.

In-process, on SQLite and PostgreSQL, against real receivers on 127.0.0.1 (`tests/receivers`).
The test drives the notifier (`Notifier.send_due`) itself, and the service's clock
(`api.domain.clock.now`) moves only when the test says, so retries and the retry window
come when the test decides, not when a timer fires. What crosses processes (a crash, two
instances) is in `system/test_notification_processes.py`.
"""

import logging
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from api.domain import clock as domain_clock
from api.domain import creators
from api.domain.notifications import Notifier, token_signing_secret
from api.domain.purge import purge_expired
from api.settings import InvalidSettings, Settings, load_settings
from api.storage import notifications
from api.storage.database import Database
from api.storage.statements import notification_columns, notifications_table, receipt_columns
from api.telemetry.metrics import LiveSecrets
from models import StoredNotificationState
from tests.receivers import Receiver, receiving

SIGNING_SECRET = "whsec_" + "bm90aWZpY2F0aW9ucy10ZXN0LXNpZ25pbmctc2VjcmV0IQ=="
PASSPHRASE = "notify-passphrase"
SECRET = "notify-canary-secret"
ENDINGS = ["revealed", "burned", "revoked", "destroyed", "expired"]


class MovingClock:
    """The service's clock, standing still until the test moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def service_clock(monkeypatch: pytest.MonkeyPatch) -> MovingClock:
    """Stop `api.domain.clock.now` at the real time; the test moves it."""
    moving = MovingClock(domain_clock.now())
    monkeypatch.setattr(domain_clock, "now", moving)
    return moving


@pytest.fixture(autouse=True)
async def _none_pending(db: Database) -> None:
    """Give up what earlier tests left pending, so each test's notifier sends its own alone."""
    await db.execute(
        update(notifications_table)
        .where(notification_columns.state == StoredNotificationState.PENDING.value)
        .values(state=StoredNotificationState.FAILED.value)
    )


@pytest.fixture
def notifying(configure: Callable[..., Settings]) -> Settings:
    """Notifications on, to receivers on this machine's loopback over plain HTTP."""
    return configure(
        WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_ALLOW_PRIVATE="true",
        WEBHOOK_SIGNING_SECRET=SIGNING_SECRET,
        WEBHOOK_RETRY_BASE_SECONDS="60",
        WEBHOOK_TIMEOUT_SECONDS="10",
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


def notifier(db: Database, settings: Settings) -> Notifier:
    return Notifier(db, settings, rng=random.Random(7))


async def create(
    client: httpx.AsyncClient, url: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    body = {"secret": SECRET, "passphrase": PASSPHRASE, "notify_url": url, **extra}
    response = await client.post("/generate", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


async def receipt(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"/receipts/{created['receipt_key']}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def end(
    client: httpx.AsyncClient,
    db: Database,
    created: dict[str, Any],
    ending: str,
    service_clock: MovingClock,
) -> None:
    """Bring the secret to `ending` the way its users would."""
    key, passphrase = created["secret_key"], {"passphrase": PASSPHRASE}
    if ending == "revealed":
        response = await client.post(f"/secrets/{key}", json=passphrase)
    elif ending == "burned":
        response = await client.request("DELETE", f"/secrets/{key}", json=passphrase)
    elif ending == "revoked":
        response = await client.delete(f"/receipts/{created['receipt_key']}")
    elif ending == "destroyed":  # MAX_FAILED_ATTEMPTS=1: one wrong passphrase ends it
        response = await client.post(f"/secrets/{key}", json={"passphrase": "wrong"})
        assert response.status_code == 404
        return
    else:
        service_clock.advance(seconds=61)
        assert await purge_expired(db=db, batch_size=1000) >= 1
        return
    assert response.status_code in (200, 204), response.text


@pytest.mark.parametrize("ending", ENDINGS)
async def test_every_ending_sends_one_signed_notification(
    ending: str,
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    configure: Callable[..., Settings],
    receiver: Receiver,
    service_clock: MovingClock,
) -> None:
    configure(MAX_FAILED_ATTEMPTS="1")
    created = await create(client, receiver.url(), ttl_seconds=60)
    await end(client, db, created, ending, service_clock)
    shown = await receipt(client, created)
    assert shown["status"] == ending
    assert shown["notification"] == "pending"

    assert await notifier(db, notifying).send_due() >= 1
    (delivery,) = receiver.wait_for(1)
    body = delivery.verified(SIGNING_SECRET)  # the `standardwebhooks` library's own check
    assert body == {
        "type": f"secret.{ending}",
        "status": ending,
        "closed_at": shown["closed_at"],
        "failed_attempts": shown["failed_attempts"],
        "public_id": created["public_id"],
    }
    assert delivery.headers["webhook-id"] == f"msg_{created['public_id']}"
    assert delivery.headers["content-type"] == "application/json"
    # Neither key, nor the secret or its passphrase, goes to the receiver.
    for canary in (created["secret_key"], created["receipt_key"], SECRET, PASSPHRASE):
        assert canary not in delivery.body.decode()
        assert canary not in str(delivery.headers)
    assert (await receipt(client, created))["notification"] == "delivered"
    # Exactly once: nothing is due any more, long after any lease or backoff.
    service_clock.advance(hours=25)
    await notifier(db, notifying).send_due()
    assert len(receiver.deliveries) == 1


async def test_a_receiver_that_fails_twice_gets_three_deliveries_with_one_id(
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    service_clock: MovingClock,
) -> None:
    with receiving(answers=[500, 503]) as flaky:
        created = await create(client, flaky.url())
        await end(client, db, created, "revealed", service_clock)
        sender = notifier(db, notifying)
        for attempt in (1, 2, 3):
            await sender.send_due()
            assert len(flaky.deliveries) == attempt
            # The next attempt waits for its backoff: the clock has not moved, so not yet.
            await sender.send_due()
            assert len(flaky.deliveries) == attempt
            service_clock.advance(hours=1)
        ids = {delivery.headers["webhook-id"] for delivery in flaky.deliveries}
        assert ids == {f"msg_{created['public_id']}"}
        assert (await receipt(client, created))["notification"] == "delivered"
        assert await _attempts(db, created) == 3


async def _receipt_id(db: Database, created: dict[str, Any]) -> uuid.UUID:
    rows = await db.execute(
        select(receipt_columns.id).where(receipt_columns.public_id == created["public_id"])
    )
    receipt_id: uuid.UUID = rows[0][0]
    return receipt_id


async def _attempts(db: Database, created: dict[str, Any]) -> int | None:
    """The attempts of the secret's notification; None once it is gone."""
    rows = await db.execute(
        select(notification_columns.attempts).where(
            notification_columns.receipt_id == await _receipt_id(db, created)
        )
    )
    return int(rows[0][0]) if rows else None


async def test_a_receiver_down_for_good_ends_failed_after_the_retry_window(
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    configure: Callable[..., Settings],
    service_clock: MovingClock,
) -> None:
    configure(WEBHOOK_RETRY_HOURS="2")
    with receiving(answers=[503] * 100) as down:
        created = await create(client, down.url())
        await end(client, db, created, "revealed", service_clock)
        sender = notifier(db, notifying)
        for _ in range(20):  # far more rounds than a two-hour window holds
            await sender.send_due()
            if (await receipt(client, created))["notification"] == "failed":
                break
            service_clock.advance(minutes=30)
        assert (await receipt(client, created))["notification"] == "failed"
        tried = len(down.deliveries)
        assert tried >= 2
        service_clock.advance(hours=24)
        await sender.send_due()
        assert len(down.deliveries) == tried  # given up: never tried again


async def test_a_name_that_resolves_to_loopback_is_refused_at_delivery(
    client: httpx.AsyncClient,
    db: Database,
    configure: Callable[..., Settings],
    receiver: Receiver,
    service_clock: MovingClock,
) -> None:
    # `localhost` is a name: the create cannot know where it leads, the delivery checks.
    settings = configure(
        WEBHOOK_ALLOWED_HOSTS="localhost",
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_SIGNING_SECRET=SIGNING_SECRET,
    )
    created = await create(client, f"http://localhost:{receiver.port}/hook")
    await end(client, db, created, "revealed", service_clock)
    await notifier(db, settings).send_due()
    assert receiver.deliveries == []
    assert (await receipt(client, created))["notification"] == "failed"  # no retry changes it


async def test_a_token_signs_with_its_own_secret_until_rotated(
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    configure: Callable[..., Settings],
    receiver: Receiver,
    service_clock: MovingClock,
) -> None:
    configure(CREATE_AUTH="token")
    name = f"notify-{uuid.uuid4().hex[:8]}"
    token = await creators.issue_token(db=db, name=name)
    token_id, generation = await creators.signing_identity(db=db, name=name)
    first_secret = token_signing_secret(SIGNING_SECRET, token_id, generation)
    authorized = {"authorization": f"Bearer {token}"}

    created = await create(client, receiver.url(), headers=authorized)
    await end(client, db, created, "revealed", service_clock)
    await notifier(db, notifying).send_due()
    (delivery,) = receiver.wait_for(1)
    assert delivery.verified(first_secret)["public_id"] == created["public_id"]
    with pytest.raises(Exception, match="signature"):
        delivery.verified(SIGNING_SECRET)  # not the instance's own secret

    _, rotated = await creators.signing_identity(db=db, name=name, rotate=True)
    assert rotated == generation + 1
    second_secret = token_signing_secret(SIGNING_SECRET, token_id, rotated)
    created = await create(client, receiver.url(), headers=authorized)
    await end(client, db, created, "revealed", service_clock)
    await notifier(db, notifying).send_due()
    second = receiver.wait_for(2)[1]
    assert second.verified(second_secret)["public_id"] == created["public_id"]
    with pytest.raises(Exception, match="signature"):
        second.verified(first_secret)


async def test_the_purge_removes_a_notification_with_its_receipt(
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    configure: Callable[..., Settings],
    receiver: Receiver,
    service_clock: MovingClock,
) -> None:
    configure(RECEIPT_RETENTION_SECONDS="60")
    created = await create(client, receiver.url(), ttl_seconds=60)
    receipt_id = await _receipt_id(db, created)
    await end(client, db, created, "revealed", service_clock)
    await notifier(db, notifying).send_due()
    assert (await receipt(client, created))["notification"] == "delivered"
    service_clock.advance(seconds=200)  # past the expiry and the retention after it
    await purge_expired(db=db, batch_size=1000)
    response = await client.get(f"/receipts/{created['receipt_key']}")
    assert response.status_code == 404
    rows = await db.execute(
        select(notification_columns.state).where(notification_columns.receipt_id == receipt_id)
    )
    assert rows == []


async def test_logs_name_the_public_id_never_a_key_or_the_url(
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    service_clock: MovingClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with receiving(answers=[500]) as flaky:
        url = flaky.url("/hook?token=url-canary-token")
        created = await create(client, url)
        await end(client, db, created, "revealed", service_clock)
        sender = notifier(db, notifying)
        await sender.send_due()
        service_clock.advance(hours=1)
        await sender.send_due()
        assert len(flaky.deliveries) == 2
    # The service's own loggers, and the HTTP engine it delivers with (not the test's client).
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(("api", "httpcore", "uvicorn"))
    )
    assert created["public_id"] in logged
    for canary in ("url-canary-token", created["secret_key"], created["receipt_key"], SECRET):
        assert canary not in logged


def _counted(name: str) -> float:
    return REGISTRY.get_sample_value(f"onetime_secrets_notifications_{name}_total") or 0.0


async def test_metrics_count_deliveries_retries_and_failures_and_the_oldest_pending(
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    configure: Callable[..., Settings],
    service_clock: MovingClock,
) -> None:
    before = {name: _counted(name) for name in ("delivered", "retried", "failed")}
    with receiving(answers=[500]) as flaky:
        retried = await create(client, flaky.url())
        await end(client, db, retried, "revealed", service_clock)
        await notifier(db, notifying).send_due()  # 500: tried again later
        service_clock.advance(minutes=10)
        gauges = LiveSecrets(notifying)  # uncached: the application's own may be 15 s old
        await gauges.refresh(db)
        (oldest,) = [g for g in gauges.collect() if g.name.endswith("oldest_pending_seconds")]
        assert oldest.samples[0].value >= 600  # queued ten minutes ago, by the service's clock
        service_clock.advance(hours=1)
        await notifier(db, notifying).send_due()  # 204
        refused = await create(client, flaky.url())
        await end(client, db, refused, "revealed", service_clock)
        # The operator takes the host off the list: the queued notification is refused.
        settings = configure(WEBHOOK_ALLOWED_HOSTS="hooks.invalid")
        await notifier(db, settings).send_due()
    after = {name: _counted(name) for name in before}
    assert {name: after[name] - before[name] for name in before} == {
        "delivered": 1,
        "retried": 1,
        "failed": 1,
    }


@pytest.mark.parametrize(
    ("env", "refusal"),
    [
        ({"WEBHOOK_ALLOWED_HOSTS": "hooks.example.com"}, "needs WEBHOOK_SIGNING_SECRET"),
        (
            {"WEBHOOK_ALLOWED_HOSTS": "hooks example!", "WEBHOOK_SIGNING_SECRET": SIGNING_SECRET},
            "WEBHOOK_ALLOWED_HOSTS: .*host name",
        ),
        ({"WEBHOOK_SIGNING_SECRET": "canary-not-a-whsec"}, "WEBHOOK_SIGNING_SECRET: .*whsec_"),
        ({"WEBHOOK_SIGNING_SECRET": "whsec_c2hvcnQ="}, "24 to 64 random bytes"),
        ({"WEBHOOK_SIGNING_SECRET": "whsec_" + "A" * 108}, "24 to 64 random bytes"),  # 81 bytes
    ],
)
def test_webhook_settings_that_cannot_work_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], refusal: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings, match=refusal) as refused:
        load_settings()
    assert "canary" not in str(refused.value)  # names the variable, never its value


def test_allowed_hosts_read_as_the_deliveries_compare_them() -> None:
    settings = Settings(
        webhook_allowed_hosts="Hooks.Example.COM, *.example.org [::1]",
        webhook_signing_secret=SIGNING_SECRET,
    )
    assert settings.webhook_allowed_hosts == ["*.example.org", "::1", "hooks.example.com"]
    assert settings.notifications_on
    assert not Settings().notifications_on


class BrokenSender:
    """A sender with a bug of its own: every attempt raises."""

    def __init__(self) -> None:
        self.attempts = 0

    async def deliver(self, url: str, *, body: bytes, headers: Any) -> Any:
        self.attempts += 1
        raise RuntimeError("a bug in the sender")

    async def aclose(self) -> None:
        pass


async def test_an_error_in_the_sender_is_a_failed_attempt_not_a_stuck_notification(
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    configure: Callable[..., Settings],
    receiver: Receiver,
    service_clock: MovingClock,
) -> None:
    configure(WEBHOOK_RETRY_HOURS="2")
    created = await create(client, receiver.url())
    await end(client, db, created, "revealed", service_clock)
    broken = BrokenSender()
    sender = Notifier(db, notifying, sender=broken, rng=random.Random(7))  # type: ignore[arg-type]
    await sender.send_due()
    await sender.send_due()  # backing off: not claimed again at once, as a lost lease would be
    assert broken.attempts == 1
    for _ in range(20):
        service_clock.advance(minutes=30)
        await sender.send_due()
    assert (await receipt(client, created))["notification"] == "failed"
    assert 2 <= broken.attempts < 20  # given up when the window closed


async def test_a_receipt_waits_for_its_pending_notification_but_not_for_ever(
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    configure: Callable[..., Settings],
    service_clock: MovingClock,
) -> None:
    configure(RECEIPT_RETENTION_SECONDS="0", WEBHOOK_RETRY_HOURS="24")
    created = await create(client, "http://127.0.0.1:9/hook", ttl_seconds=60)
    await end(client, db, created, "revealed", service_clock)  # queued; nobody sends it here
    receipt_id = await _receipt_id(db, created)
    window = timedelta(hours=24)
    service_clock.advance(seconds=120)  # past the expiry, and a retention of 0
    await purge_expired(db=db, batch_size=1000, notify_window=window)
    # Kept for its sender, which needs the receipt's URL and public id to send it.
    assert await _attempts(db, created) == 0
    service_clock.advance(hours=25)  # nobody sent it within the window
    await purge_expired(db=db, batch_size=1000, notify_window=window)
    assert (
        await db.execute(select(receipt_columns.id).where(receipt_columns.id == receipt_id)) == []
    )
    rows = await db.execute(
        select(notification_columns.state).where(notification_columns.receipt_id == receipt_id)
    )
    assert rows == []


async def test_a_sender_whose_lease_ran_out_cannot_record_over_a_later_attempt(
    client: httpx.AsyncClient,
    db: Database,
    notifying: Settings,
    service_clock: MovingClock,
) -> None:
    created = await create(client, "http://127.0.0.1:9/hook")
    await end(client, db, created, "revealed", service_clock)
    receipt_id = await _receipt_id(db, created)
    now = service_clock.now
    (first,) = await notifications.claim_due(
        db, now=now, lease_until=now + timedelta(seconds=10), batch_size=100
    )
    later = now + timedelta(seconds=11)  # the first sender's lease has run out
    (second,) = await notifications.claim_due(
        db, now=later, lease_until=later + timedelta(seconds=10), batch_size=100
    )
    assert (first.receipt_id, second.receipt_id) == (receipt_id, receipt_id)
    assert (first.attempt, second.attempt) == (1, 2)
    delivered = notifications.Attempted(
        receipt_id, 2, StoredNotificationState.DELIVERED, later, finished_at=later, last_error=None
    )
    # The first sender, late, thinks its attempt failed.
    failed = notifications.Attempted(
        receipt_id,
        1,
        StoredNotificationState.PENDING,
        later,
        finished_at=None,
        last_error="timeout",
    )
    for attempted in (delivered, failed):
        await notifications.record(db, [attempted])
    assert (await receipt(client, created))["notification"] == "delivered"


@pytest.mark.parametrize("ending", ["revealed", "expired"])
async def test_a_secret_that_asked_for_nothing_queues_nothing(
    ending: str, client: httpx.AsyncClient, db: Database, service_clock: MovingClock
) -> None:
    response = await client.post(
        "/generate", json={"secret": SECRET, "passphrase": PASSPHRASE, "ttl_seconds": 60}
    )
    created = response.json()
    await end(client, db, created, ending, service_clock)
    assert await _attempts(db, created) is None  # no row: SQLite 3.40 once said otherwise
