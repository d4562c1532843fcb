"""Telling senders what became of their secrets: the outbox's sender, and its secrets.

A create may ask (`notify_url`) to be told once when its receipt leaves `pending`. The
transaction that closes the receipt queues the notification (`api.storage.notifications`),
so none is lost to a crash; each process runs a `Notifier` that claims what is due, signs
it the Standard Webhooks way and delivers it (`api.webhooks`), retrying with backoff until
WEBHOOK_RETRY_HOURS have passed. A reveal never waits for it: the closing write only wakes
the notifier (`events.NOTIFICATION_QUEUED`).

Delivery is at least once. A notifier that dies between its POST and recording it leaves
the notification claimed until its lease ends (`LEASE_BOUNDS` times an attempt's time
bound), and then it is sent again; `webhook-id` is the same on every attempt, so a receiver
drops the repeat.

Signing secrets: WEBHOOK_SIGNING_SECRET signs notifications of secrets made without a
creator token. In token mode each token has its own, derived from that one with the token's
id and `signing_generation` (never stored; `ots-admin tokens rotate-signing-secret` counts
the generation up), so no table holds a secret that signs.
"""

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import logging
import random
import uuid
from datetime import datetime, timedelta

from api.domain import clock, events
from api.domain.unavailability import unavailable_when_the_database_fails
from api.settings import Settings
from api.storage import notifications
from api.storage.database import Database
from api.webhooks import (
    DeliveryOutcome,
    DeliveryTimeouts,
    DestinationPolicy,
    WebhookEvent,
    WebhookSender,
    check_url,
    delay_before_attempt,
    signature_headers,
    webhook_body,
)
from models import StoredNotificationState, StoredReceiptStatus

logger = logging.getLogger(__name__)

BATCH_SIZE = 20
# A claim lasts this many times an attempt's time bound; then another sender may take it.
LEASE_BOUNDS = 2
# At most this long between retries, however many have failed.
MAX_RETRY_DELAY_SECONDS = 3600.0
_EVENTS = {
    StoredReceiptStatus.REVEALED: WebhookEvent.REVEALED,
    StoredReceiptStatus.BURNED: WebhookEvent.BURNED,
    StoredReceiptStatus.REVOKED: WebhookEvent.REVOKED,
    StoredReceiptStatus.DESTROYED: WebhookEvent.DESTROYED,
    StoredReceiptStatus.EXPIRED: WebhookEvent.EXPIRED,
}
_TOKEN_SECRET_LABEL = b"onetime-secrets/webhook-signing-secret/"


def policy(settings: Settings) -> DestinationPolicy:
    """Where notifications may go, from WEBHOOK_ALLOWED_HOSTS, _ALLOW_HTTP, _ALLOW_PRIVATE."""
    return _policy(
        frozenset(settings.webhook_allowed_hosts),
        settings.webhook_allow_http,
        settings.webhook_allow_private,
    )


@functools.lru_cache(maxsize=8)  # built once per configuration, not on every create
def _policy(hosts: frozenset[str], allow_http: bool, allow_private: bool) -> DestinationPolicy:
    return DestinationPolicy(
        allowed_hosts=hosts, allow_http=allow_http, allow_private=allow_private
    )


def token_signing_secret(master: str, token_id: uuid.UUID, generation: int) -> str:
    """Derive the signing secret of one creator token's notifications from `master`."""
    master_key = base64.b64decode(master.removeprefix("whsec_"))
    message = _TOKEN_SECRET_LABEL + token_id.bytes + generation.to_bytes(4, "big")
    derived = hmac.new(master_key, message, hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(derived).decode("ascii")


@unavailable_when_the_database_fails
async def oldest_pending_age(*, db: Database) -> float:
    """Seconds since the oldest notification still pending was queued; 0 if there is none."""
    oldest = await notifications.oldest_pending(db)
    if oldest is None:
        return 0.0
    return max(0.0, (clock.now() - clock.as_utc(oldest)).total_seconds())


def webhook_id(public_id: str) -> str:
    """Return the `webhook-id` of a receipt's one notification: the same on every attempt."""
    return f"msg_{public_id}"


class Notifier:
    """Sends this process's share of due notifications until cancelled.

    `rng` draws the retries' jitter; `sender` delivers (tests give one of their own).
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        sender: WebhookSender | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        timeouts = DeliveryTimeouts(
            connect=settings.webhook_timeout_seconds,
            read=settings.webhook_timeout_seconds,
            write=settings.webhook_timeout_seconds,
            total=settings.webhook_timeout_seconds * 2,
        )
        self._lease = timedelta(seconds=timeouts.total * LEASE_BOUNDS)
        self._policy = policy(settings)
        self._sender = sender or WebhookSender(self._policy, timeouts=timeouts)
        self._rng = rng or random.SystemRandom()
        self._due = asyncio.Event()

    def _on_event(self, event: str, _count: int, _label: str | None) -> None:
        if event == events.NOTIFICATION_QUEUED:
            self._due.set()

    async def run(self) -> None:
        """Deliver what is due, then wait for a wake-up or WEBHOOK_POLL_SECONDS; repeat."""
        events.subscribe(self._on_event)
        try:
            while True:
                self._due.clear()
                try:
                    await self.send_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a crash here would stop notifying for good
                    logger.warning("sending notifications failed: %s", type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.webhook_poll_seconds):
                        await self._due.wait()
        finally:
            events.unsubscribe(self._on_event)
            await self._sender.aclose()

    async def send_due(self) -> int:
        """Claim and send every notification due now, a batch at a time; return how many."""
        sent = 0
        while True:
            now = clock.now()
            batch = await notifications.claim_due(
                self._db, now=now, lease_until=now + self._lease, batch_size=BATCH_SIZE
            )
            if not batch:
                return sent
            outcomes = await asyncio.gather(*(self._outcome(due) for due in batch))
            now = clock.now()
            attempts = [
                self._attempted(due, outcome, now)
                for due, outcome in zip(batch, outcomes, strict=True)
            ]
            try:
                await notifications.record(self._db, attempts)
            except Exception as exc:
                # Their leases run out and they are sent again: at least once.
                logger.warning(
                    "%d notifications were not recorded: %s", len(batch), type(exc).__name__
                )
            else:
                for due, outcome, attempted in zip(batch, outcomes, attempts, strict=True):
                    _report(due, outcome, attempted, now)
            sent += len(batch)

    def _signing_secret(self, due: notifications.Due) -> str:
        secret = self._settings.webhook_signing_secret
        assert secret is not None, "Settings refuses WEBHOOK_ALLOWED_HOSTS without it"
        master = secret.get_secret_value()
        if due.creator_token_id is None:
            return master
        return token_signing_secret(master, due.creator_token_id, due.signing_generation or 0)

    async def _attempt(self, due: notifications.Due) -> DeliveryOutcome:
        refusal = check_url(due.url, self._policy)
        if refusal is not None:
            # Refused for good (the instance's rules changed since the create): nothing to sign.
            return DeliveryOutcome(delivered=False, reason=f"refused: {refusal}", retry=False)
        status = StoredReceiptStatus(due.status)
        body = webhook_body(
            event=_EVENTS[status],
            status=status.value,
            closed_at=clock.as_utc(due.closed_at),
            failed_attempts=due.failed_attempts,
            public_id=due.public_id,
        )
        headers = signature_headers(
            secret=self._signing_secret(due),
            webhook_id=webhook_id(due.public_id),
            timestamp=clock.now(),
            body=body,
        )
        return await self._sender.deliver(due.url, body=body, headers=headers)

    async def _outcome(self, due: notifications.Due) -> DeliveryOutcome:
        try:
            return await self._attempt(due)
        except Exception as exc:
            # Not the receiver's doing, but an attempt all the same: it backs off, and the
            # window still ends it, rather than being claimed again after every lease.
            logger.exception("notification of %s could not be sent", due.public_id)
            return DeliveryOutcome(delivered=False, reason=type(exc).__name__, retry=True)

    def _attempted(
        self, due: notifications.Due, outcome: DeliveryOutcome, now: datetime
    ) -> notifications.Attempted:
        """Say what to record of `outcome`: delivered, due again after a backoff, or failed."""

        def attempted(
            state: StoredNotificationState, next_attempt_at: datetime, finished: bool
        ) -> notifications.Attempted:
            return notifications.Attempted(
                receipt_id=due.receipt_id,
                attempt=due.attempt,
                state=state,
                next_attempt_at=next_attempt_at,
                finished_at=now if finished else None,
                last_error=None if outcome.delivered else outcome.reason[:64],
            )

        if outcome.delivered:
            return attempted(StoredNotificationState.DELIVERED, now, finished=True)
        retry_at = now + timedelta(seconds=self._delay_after(due.attempt))
        window_ends = clock.as_utc(due.created_at) + timedelta(
            hours=self._settings.webhook_retry_hours
        )
        if outcome.retry and retry_at < window_ends:
            return attempted(StoredNotificationState.PENDING, retry_at, finished=False)
        return attempted(StoredNotificationState.FAILED, now, finished=True)

    def _delay_after(self, attempt: int) -> float:
        return delay_before_attempt(
            attempt + 1,
            rng=self._rng,
            base_seconds=self._settings.webhook_retry_base_seconds,
            cap_seconds=MAX_RETRY_DELAY_SECONDS,
        )


def _report(
    due: notifications.Due,
    outcome: DeliveryOutcome,
    attempted: notifications.Attempted,
    now: datetime,
) -> None:
    """Count and log a recorded attempt (by the receipt's public id, never a key)."""
    if attempted.state is StoredNotificationState.DELIVERED:
        events.emit(events.NOTIFICATION_DELIVERED)
        logger.info("notification of %s delivered (attempt %d)", due.public_id, due.attempt)
    elif attempted.state is StoredNotificationState.PENDING:
        events.emit(events.NOTIFICATION_RETRIED)
        logger.info(
            "notification of %s not delivered (attempt %d: %s); next attempt in %.0f s",
            due.public_id,
            due.attempt,
            outcome.reason,
            (attempted.next_attempt_at - now).total_seconds(),
        )
    else:
        events.emit(events.NOTIFICATION_FAILED)
        logger.warning(
            "notification of %s failed for good after %d attempts: %s",
            due.public_id,
            due.attempt,
            outcome.reason,
        )
