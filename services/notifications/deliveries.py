"""Deliveries: the delivery worker's use cases (claim, renew, record) and the retry policy.

No use case commits: the delivery loop (`delivery`) commits after the claim and after each
record step, so that no transaction stays open while a message is on the network.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.notifications.models import (
    Channel,
    Contact,
    Delivery,
    DeliveryStatus,
    Notification,
    WebhookEndpoint,
)
from services.notifications.webhooks import ENDPOINT_DELETED, ENDPOINT_DISABLED, PING_EVENT
from shared.backoff import backoff_ceiling, jittered_delay
from shared.db import as_utc, is_postgresql, rows_matched

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000
USER_DEACTIVATED = "cancelled: the user was deactivated"
ADDRESS_UNVERIFIED = "cancelled: the email address is not verified"
WORKER_LOST = (
    "failed: the worker sending the last attempt stopped before recording its outcome "
    "(crashed or killed), and no attempts are left"
)


class DeliveryError(Exception):
    """A send did not go through; the message (stored as last_error) says why."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        # A webhook receiver's HTTP status, when it answered one (the attempt log shows it).
        self.status_code = status_code


# -- retry policy -----------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed delivery is tried again."""

    max_attempts: int
    base_seconds: float
    cap_seconds: float

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt `attempt` (1-based): base * 2^(n-1), capped."""
        return backoff_ceiling(attempt, base=self.base_seconds, cap=self.cap_seconds)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds before the next try after failed attempt `attempt`: half fixed, half random."""
        # "Equal jitter": the random half spreads the retries of many deliveries that failed
        # together (an SMTP outage) instead of sending them back in one wave; the fixed
        # half keeps a floor under the whole retry window, so a run of short random draws
        # cannot use up every attempt within an outage.
        return jittered_delay(attempt, base=self.base_seconds, cap=self.cap_seconds, rng=rng)

    def window(self) -> tuple[float, float]:
        """Shortest and longest time from the first failure until a delivery is given up."""
        total = sum(self.ceiling(n) for n in range(1, self.max_attempts))
        return total / 2, total


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery with everything needed to send it, detached from the session."""

    id: uuid.UUID
    channel: str
    attempt: int
    payload: dict[str, Any]
    email: str | None = None
    url: str | None = None
    secret: str | None = None
    # The secret before `secret` during a rotation's grace period: it signs as well.
    previous_secret: str | None = None
    endpoint_id: uuid.UUID | None = None
    # The originating event's, so the send is logged under that request and trace.
    request_id: str | None = None
    traceparent: str | None = None
    event_type: str | None = None

    @property
    def ping(self) -> bool:
        """Whether this is a webhook test ping (one attempt, no notification)."""
        return bool(self.payload.get("ping"))


def _finish(delivery: Delivery, status: DeliveryStatus, error: str | None, now: datetime) -> None:
    delivery.status = status.value
    delivery.last_error = error
    delivery.next_attempt_at = None
    delivery.updated_at = now


def claim_due_deliveries(
    *, session: Session, now: datetime, limit: int, lease_seconds: float, max_attempts: int
) -> list[DeliveryJob]:
    """Claim up to `limit` due deliveries for this worker (one attempt each).

    The caller commits before sending: the claim (attempt count and lease) must be
    visible to the other workers while the messages are on the network.
    """
    query = (
        sa.select(Delivery)
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )
    if is_postgresql(session):
        # Workers skip each other's rows instead of waiting. SQLite ignores FOR UPDATE, so
        # there (the `make run` set-up) only one delivery worker may run.
        query = query.with_for_update(skip_locked=True)
    deliveries = list(session.scalars(query))
    if not deliveries:
        return []
    user_ids = {d.user_id for d in deliveries}
    contacts = {
        c.user_id: c
        for c in session.scalars(sa.select(Contact).where(Contact.user_id.in_(user_ids)))
    }
    endpoint_ids = {d.endpoint_id for d in deliveries if d.endpoint_id is not None}
    endpoints = {
        e.id: e
        for e in session.scalars(
            sa.select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids))
        )
    }
    correlation_ids = {
        row.id: (row.request_id, row.traceparent, row.event_type)
        for row in session.execute(
            sa.select(
                Notification.id,
                Notification.request_id,
                Notification.traceparent,
                Notification.event_type,
            ).where(
                Notification.id.in_(
                    {d.notification_id for d in deliveries if d.notification_id is not None}
                )
            )
        )
    }
    lease_until = now + timedelta(seconds=lease_seconds)
    jobs: list[DeliveryJob] = []
    for delivery in deliveries:
        contact = contacts.get(delivery.user_id)
        if contact is not None and not contact.active:
            # Deactivated after this delivery was created (a concurrent consumer).
            _finish(delivery, DeliveryStatus.CANCELLED, USER_DEACTIVATED, now)
            continue
        verification = delivery.channel == Channel.EMAIL and bool(
            delivery.payload.get("verification")
        )
        if (
            delivery.channel == Channel.EMAIL
            and not verification
            and contact is not None
            and not contact.email_verified
        ):
            # Created before the contact was known to be unverified (event order).
            _finish(delivery, DeliveryStatus.CANCELLED, ADDRESS_UNVERIFIED, now)
            continue
        endpoint = endpoints.get(delivery.endpoint_id) if delivery.endpoint_id else None
        if delivery.channel == Channel.WEBHOOK and endpoint is None:
            _finish(delivery, DeliveryStatus.CANCELLED, ENDPOINT_DELETED, now)
            continue
        ping = bool(delivery.payload.get("ping"))
        if endpoint is not None and not endpoint.enabled and not ping:
            # Disabled after this delivery was created; `recover` sends it again.
            _finish(delivery, DeliveryStatus.CANCELLED, ENDPOINT_DISABLED, now)
            continue
        if delivery.attempts >= max_attempts:
            # Only a claim that was never recorded leaves a pending row here: its worker
            # died mid-send (or NOTIFICATIONS_MAX_ATTEMPTS was lowered). The attempt counts
            # from the claim, so a message that crashes (or hangs) every worker that tries
            # it ends `failed`, not retried forever.
            _finish(delivery, DeliveryStatus.FAILED, WORKER_LOST, now)
            log.warning(
                "delivery failed: its worker was lost on the last attempt",
                extra={"delivery_id": str(delivery.id), "attempts": delivery.attempts},
            )
            continue
        delivery.attempts += 1
        delivery.next_attempt_at = delivery.claimed_until = lease_until
        delivery.updated_at = now
        request_id, traceparent, event_type = correlation_ids.get(
            delivery.notification_id, (None, None, PING_EVENT if ping else None)
        )
        jobs.append(
            DeliveryJob(
                id=delivery.id,
                channel=delivery.channel,
                attempt=delivery.attempts,
                payload=dict(delivery.payload),
                email=(
                    str(delivery.payload["to"])
                    if verification
                    else contact.email
                    if contact is not None
                    else None
                ),
                url=endpoint.url if endpoint is not None else None,
                secret=endpoint.secret if endpoint is not None else None,
                previous_secret=_previous_secret(endpoint, now),
                endpoint_id=endpoint.id if endpoint is not None else None,
                request_id=request_id,
                traceparent=traceparent,
                event_type=event_type,
            )
        )
    return jobs


def _previous_secret(endpoint: WebhookEndpoint | None, now: datetime) -> str | None:
    """The endpoint's secret before the current one, while its grace period lasts."""
    if endpoint is None or endpoint.previous_secret is None:
        return None
    expires_at = endpoint.previous_secret_expires_at
    if expires_at is None or as_utc(expires_at) <= now:
        return None
    return endpoint.previous_secret


def renew_claim(*, session: Session, job: DeliveryJob, now: datetime, lease_seconds: float) -> bool:
    """Extend our lease right before sending; False (send nothing) when it is ours no more.

    The caller commits before sending.
    """
    # Every claim adds one to `attempts`, so an unchanged count proves that no other
    # worker claimed the row since we did, even when our lease ran out while earlier
    # jobs of the batch were sent. The conditional UPDATE decides it atomically: a worker
    # claiming it now either waits for this commit (and then sees a fresh lease) or has
    # already changed the count (and this matches nothing).
    result = session.execute(
        sa.update(Delivery)
        .where(
            Delivery.id == job.id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.attempts == job.attempt,
        )
        .values(
            next_attempt_at=now + timedelta(seconds=lease_seconds),
            claimed_until=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if rows_matched(result) == 1:
        return True
    log.info("delivery no longer ours; not sent", extra={"delivery_id": str(job.id)})
    return False


def _still_ours(session: Session, job: DeliveryJob) -> Delivery | None:
    """The delivery, locked, if it is still pending under this worker's claim."""
    delivery = session.get(Delivery, job.id, with_for_update=True)
    if (
        delivery is None
        or delivery.status != DeliveryStatus.PENDING
        or delivery.attempts != job.attempt
    ):
        # Cancelled meanwhile, or our lease ran out and another worker claimed it.
        log.info("delivery no longer ours; result dropped", extra={"delivery_id": str(job.id)})
        return None
    return delivery


def record_delivery_sent(*, session: Session, job: DeliveryJob, now: datetime) -> None:
    """Mark a claimed delivery sent (the caller commits)."""
    # One conditional UPDATE (every mail passes here): it matches only while the row is
    # still under our claim (the attempt count is ours). Cancelled
    # while on the wire (the user was deactivated, the endpoint deleted), it went out all
    # the same, and its owner should see that rather than "cancelled".
    cancelled = Delivery.status == DeliveryStatus.CANCELLED
    result = session.execute(
        sa.update(Delivery)
        .where(
            Delivery.id == job.id,
            Delivery.attempts == job.attempt,
            Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.CANCELLED)),
        )
        .values(
            status=DeliveryStatus.SENT.value,
            sent_at=now,
            next_attempt_at=None,
            claimed_until=None,
            updated_at=now,
            # The reason it was cancelled, which it was not.
            last_error=sa.case((cancelled, None), else_=Delivery.last_error),
        )
        .execution_options(synchronize_session=False)
    )
    if rows_matched(result) != 1:
        log.info("delivery no longer ours; result dropped", extra={"delivery_id": str(job.id)})


def record_delivery_failed(
    *, session: Session, job: DeliveryJob, error: str, now: datetime, policy: RetryPolicy
) -> str | None:
    """Record a failed attempt: retry later with backoff, or fail for good (caller commits)."""
    delivery = _still_ours(session, job)
    if delivery is None:
        return None
    delivery.last_error = error[:MAX_ERROR_CHARS]
    delivery.updated_at = now
    delivery.claimed_until = None
    # A test ping is tried once: its owner wants to know now, not after a day of retries.
    if job.attempt >= policy.max_attempts or job.ping:
        delivery.status = DeliveryStatus.FAILED.value
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = now + timedelta(seconds=policy.delay(job.attempt))
    return delivery.status


def retry_failed_deliveries(
    *, session: Session, now: datetime, channel: str | None = None, since: datetime | None = None
) -> int:
    """Queue failed deliveries again with a fresh set of attempts, due now; how many."""
    # An operator's command, after the cause (an SMTP outage longer than the retry window,
    # a broken webhook receiver) is fixed. Deliveries of users deactivated or endpoints
    # deleted since are cancelled by the claim as usual, not sent.
    query = sa.update(Delivery).where(Delivery.status == DeliveryStatus.FAILED)
    if channel is not None:
        query = query.where(Delivery.channel == channel)
    if since is not None:
        query = query.where(Delivery.updated_at >= since)
    result = session.execute(
        query.values(
            status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now, updated_at=now
        ).execution_options(synchronize_session=False)
    )
    return rows_matched(result)
