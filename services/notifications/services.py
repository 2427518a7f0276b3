"""Use cases of the notifications service: contacts, notifications, deliveries.

Webhook endpoints (register, list, delete) are in `webhooks`.

No Flask here, and no use case commits: the entry point owns the transaction
(`shared.uow`). The API views commit each request; the inbox commits the event's row and its
effect together; the delivery loop commits after the claim and after each record step, so
that no transaction stays open while a message is on the network.

Contacts apply auth's user events in the order of the user's versions, whatever order they
arrive in: the active flag and the profile (email, name) each remember the version that
last set them and ignore anything older.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

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
from services.notifications.rendering import render

# SECRET_PREFIX is re-exported: the delivery worker signs with `services.SECRET_PREFIX`.
from services.notifications.webhooks import ENDPOINT_DELETED, webhook_body
from services.notifications.webhooks import SECRET_PREFIX as SECRET_PREFIX
from shared.backoff import backoff_ceiling, jittered_delay
from shared.context import trace_id_of
from shared.db import is_postgresql, locked_row, rows_matched, utcnow
from shared.errors import NotFoundError
from shared.pagination import PageKey, keyset_page

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000
USER_DEACTIVATED = "cancelled: the user was deactivated"
ADDRESS_UNVERIFIED = "cancelled: the email address is not verified"
WORKER_LOST = (
    "failed: the worker sending the last attempt stopped before recording its outcome "
    "(crashed or killed), and no attempts are left"
)


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


# -- contacts and notifications (called by event handlers; the inbox commits) -----------


def _locked_contact(session: Session, user_id: str) -> Contact:
    """The user's contact, made (active, nothing applied yet) when missing, row-locked.

    Two events of one user handled at once (two consumers) then apply one after the other.
    """
    now = utcnow()
    return locked_row(
        session, Contact, "user_id", user_id, active=True, created_at=now, updated_at=now
    )


def _set_profile(contact: Contact, *, email: str, name: str, version: int) -> None:
    """Take the email and name of `version` unless a later version set them."""
    if version > contact.profile_version:
        contact.email, contact.name, contact.profile_version = email, name, version
        contact.updated_at = utcnow()


def _set_active(contact: Contact, *, active: bool, version: int) -> bool:
    """Take the active flag of `version` unless a later version set it; True if taken."""
    if version <= contact.active_version:
        return False
    contact.active, contact.active_version = active, version
    contact.updated_at = utcnow()
    return True


def record_contact(
    *, session: Session, user_id: str, email: str, name: str, version: int
) -> Contact:
    """user.registered: the user's address, active; what a later version changed stays."""
    contact = _locked_contact(session, user_id)
    _set_profile(contact, email=email, name=name, version=version)
    _set_active(contact, active=True, version=version)
    session.flush()
    return contact


def update_contact_profile(
    *, session: Session, user_id: str, email: str, name: str, version: int
) -> Contact:
    """user.profile_changed: write to the new address, by the new name, from now on."""
    contact = _locked_contact(session, user_id)
    _set_profile(contact, email=email, name=name, version=version)
    session.flush()
    return contact


def reactivate_contact(*, session: Session, user_id: str, version: int) -> Contact:
    """user.reactivated: write to the user again (what was cancelled stays cancelled)."""
    contact = _locked_contact(session, user_id)
    _set_active(contact, active=True, version=version)
    session.flush()
    return contact


def remember_address(*, session: Session, user_id: str, email: str, name: str) -> Contact:
    """An address from an unversioned event (the verification link's): kept only until a
    versioned one (user.registered, user.profile_changed) is applied."""
    contact = _locked_contact(session, user_id)
    if contact.profile_version == 0:
        contact.email, contact.name, contact.updated_at = email, name, utcnow()
    session.flush()
    return contact


def mailed_recently(*, session: Session, user_id: str, event_type: str, since: datetime) -> bool:
    """Whether the user got a mail about `event_type` (sent or on its way) since `since`."""
    found = session.scalar(
        sa.select(Delivery.id)
        .join(Notification, Delivery.notification_id == Notification.id)
        .where(
            Notification.user_id == user_id,
            Notification.event_type == event_type,
            Notification.created_at >= since,
            Delivery.channel == Channel.EMAIL,
            Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENT)),
        )
        .limit(1)
    )
    return found is not None


def verify_contact(*, session: Session, user_id: str) -> Contact:
    """Mark a user's address verified; the welcome mail held back until now goes out.

    user.email_verified may overtake user.registered: the contact is then created here,
    and the welcome that follows is mailed at once.
    """
    now = utcnow()
    contact = _locked_contact(session, user_id)
    was_verified = contact.email_verified
    contact.email_verified, contact.updated_at = True, now
    if not was_verified and contact.active and contact.email:
        _mail_held_welcome(session, contact, now)
    session.flush()
    return contact


def _mail_held_welcome(session: Session, contact: Contact, now: datetime) -> None:
    welcome = session.scalar(
        sa.select(Notification).where(
            Notification.user_id == contact.user_id,
            Notification.event_type == "user.registered",
        )
    )
    if welcome is None or any(d.channel == Channel.EMAIL for d in welcome.deliveries):
        return
    rendered = render("user.registered", {"email": contact.email}, name=contact.name)
    session.add(
        Delivery(
            id=uuid.uuid4(),
            notification_id=welcome.id,
            user_id=contact.user_id,
            channel=Channel.EMAIL.value,
            payload={
                "subject": rendered.title,
                "text": rendered.email_text,
                "html": rendered.email_html,
            },
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


def send_verification_mail(
    *,
    session: Session,
    user_id: str,
    event_id: str,
    data: Mapping[str, Any],
    request_id: str | None = None,
    traceparent: str | None = None,
) -> Notification:
    """The link's mail, to the address it verifies, and an in-app note without the link.

    The link is in the mail only: an in-app notification or a webhook would hand it to
    whoever holds the account, who need not own the address.
    """
    now = utcnow()
    rendered = render("user.verification_requested", data, name=str(data["name"]))
    notification = Notification(
        id=uuid.uuid4(),
        user_id=user_id,
        event_id=event_id,
        event_type="user.verification_requested",
        title=rendered.title,
        body=rendered.body,
        created_at=now,
        request_id=request_id if request_id and len(request_id) <= 128 else None,
        traceparent=traceparent if trace_id_of(traceparent) else None,
        subject_type="user",
        subject_id=user_id,
    )
    session.add(notification)
    session.add(
        Delivery(
            id=uuid.uuid4(),
            notification_id=notification.id,
            user_id=user_id,
            channel=Channel.EMAIL.value,
            payload={
                "subject": rendered.title,
                "text": rendered.email_text,
                "html": rendered.email_html,
                # Sent to this address, verified or not, and whatever the contact says later.
                "to": str(data["email"]),
                "verification": True,
            },
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    return notification


def deactivate_contact(*, session: Session, user_id: str, version: int) -> int:
    """Stop writing to a user: mark the contact inactive and cancel pending deliveries.

    A deactivation older than what is applied (a re-activation overtook it) changes nothing.
    """
    now = utcnow()
    if not _set_active(_locked_contact(session, user_id), active=False, version=version):
        return 0
    result = session.execute(
        sa.update(Delivery)
        .where(Delivery.user_id == user_id, Delivery.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.CANCELLED,
            last_error=USER_DEACTIVATED,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    session.flush()
    return rows_matched(result)


# The event data field naming what each family of events is about.
SUBJECT_FIELDS = {"order": "order_id", "user": "user_id"}


def subject_of(event_type: str, data: Mapping[str, Any]) -> tuple[str, str] | None:
    """(type, full id) of what an event is about: the order of `order.*`, the user of `user.*`."""
    family = event_type.partition(".")[0]
    field = SUBJECT_FIELDS.get(family)
    value = data.get(field) if field else None
    if value is None or len(str(value)) > 64:
        return None
    return family, str(value)


def notify(
    *,
    session: Session,
    user_id: str,
    event_id: str,
    event_type: str,
    occurred_at: datetime,
    data: Mapping[str, Any],
    request_id: str | None = None,
    traceparent: str | None = None,
    mail: bool = True,
) -> Notification:
    """Turn one event into the user's notification plus an email and webhook deliveries.

    `mail=False` keeps it in the app (and webhooks): the caller decided it is not worth a mail.
    """
    now = utcnow()
    contact = session.get(Contact, user_id)
    rendered = render(event_type, data, name=contact.name if contact else None)
    subject_type, subject_id = subject_of(event_type, data) or (None, None)
    notification = Notification(
        id=uuid.uuid4(),
        user_id=user_id,
        event_id=event_id,
        event_type=event_type,
        title=rendered.title,
        body=rendered.body,
        created_at=now,
        # Kept only when well-formed: they come from another service, and a value that
        # does not fit the column must not turn the whole event into a poison message.
        request_id=_request_id(request_id),
        traceparent=traceparent if trace_id_of(traceparent) else None,
        subject_type=subject_type,
        subject_id=subject_id,
    )
    session.add(notification)
    if contact is not None and not contact.active:
        session.flush()
        return notification  # in-app only: a deactivated user is written to no more

    def delivery(
        channel: Channel, payload: dict[str, Any], endpoint_id: uuid.UUID | None = None
    ) -> None:
        session.add(
            Delivery(
                id=uuid.uuid4(),
                notification_id=notification.id,
                user_id=user_id,
                channel=channel.value,
                endpoint_id=endpoint_id,
                payload=payload,
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )

    # The address is looked up when sending: an order event may arrive before the user's
    # user.registered (two producers, no common order), and the mail waits for it.
    # An address known and not verified gets no mail at all (the claim checks it again).
    if mail and (contact is None or contact.email_verified):
        delivery(
            Channel.EMAIL,
            {"subject": rendered.title, "text": rendered.email_text, "html": rendered.email_html},
        )
    endpoints = session.scalars(
        sa.select(WebhookEndpoint)
        .where(WebhookEndpoint.user_id == user_id)
        .order_by(WebhookEndpoint.created_at)
    )
    body: str | None = None
    for endpoint in endpoints:
        if event_type in endpoint.event_types:
            body = body or webhook_body(event_type=event_type, occurred_at=occurred_at, data=data)
            delivery(Channel.WEBHOOK, {"body": body}, endpoint.id)
    session.flush()
    return notification


@dataclass(frozen=True)
class Notice:
    """One event to tell its user about: what `notify` takes, for `notify_many`."""

    user_id: str
    event_id: str
    event_type: str
    occurred_at: datetime
    data: Mapping[str, Any]
    request_id: str | None = None
    traceparent: str | None = None
    mail: bool = True


def notify_many(*, session: Session, notices: Sequence[Notice]) -> int:
    """`notify` for a batch of events, with the same rows; how many notifications.

    Written by hand rather than through the ORM's unit of work, because this is the
    consumer's hot path (every order event passes here): the contacts and webhook
    endpoints of the batch's users are read with one query each, and the notification
    and delivery rows are inserted with one multi-row INSERT per table (SQLAlchemy's
    insertmanyvalues), instead of a lookup, a flush and two INSERTs per event.
    """
    if not notices:
        return 0
    user_ids = {notice.user_id for notice in notices}
    # ORM-enabled selects: anything pending in the session is flushed first.
    contacts = {
        row.user_id: row
        for row in session.execute(
            sa.select(Contact.user_id, Contact.name, Contact.active, Contact.email_verified).where(
                Contact.user_id.in_(user_ids)
            )
        )
    }
    endpoints: dict[str, list[Any]] = {}
    for row in session.execute(
        sa.select(WebhookEndpoint.id, WebhookEndpoint.user_id, WebhookEndpoint.event_types)
        .where(WebhookEndpoint.user_id.in_(user_ids))
        .order_by(WebhookEndpoint.created_at)
    ):
        endpoints.setdefault(row.user_id, []).append(row)
    notifications: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for notice in notices:
        now = utcnow()  # one per event, as `notify`: the app lists them in this order
        contact = contacts.get(notice.user_id)
        rendered = render(notice.event_type, notice.data, name=contact.name if contact else None)
        subject_type, subject_id = subject_of(notice.event_type, notice.data) or (None, None)
        notification_id = uuid.uuid4()
        notifications.append(
            {
                "id": notification_id,
                "user_id": notice.user_id,
                "event_id": notice.event_id,
                "event_type": notice.event_type,
                "title": rendered.title,
                "body": rendered.body,
                "created_at": now,
                "read_at": None,
                "request_id": _request_id(notice.request_id),
                "traceparent": notice.traceparent if trace_id_of(notice.traceparent) else None,
                "subject_type": subject_type,
                "subject_id": subject_id,
            }
        )
        if contact is not None and not contact.active:
            continue  # in-app only: a deactivated user is written to no more

        def delivery(
            channel: Channel, payload: dict[str, Any], endpoint_id: uuid.UUID | None = None
        ) -> dict[str, Any]:
            return {
                "id": uuid.uuid4(),
                "notification_id": notification_id,  # noqa: B023 (used within the iteration)
                "user_id": notice.user_id,  # noqa: B023
                "channel": channel.value,
                "endpoint_id": endpoint_id,
                "payload": payload,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "last_error": None,
                "next_attempt_at": now,  # noqa: B023
                "sent_at": None,
                "created_at": now,  # noqa: B023
                "updated_at": now,  # noqa: B023
            }

        if notice.mail and (contact is None or contact.email_verified):
            deliveries.append(
                delivery(
                    Channel.EMAIL,
                    {
                        "subject": rendered.title,
                        "text": rendered.email_text,
                        "html": rendered.email_html,
                    },
                )
            )
        body: str | None = None
        for endpoint in endpoints.get(notice.user_id, ()):
            if notice.event_type in endpoint.event_types:
                body = body or webhook_body(
                    event_type=notice.event_type, occurred_at=notice.occurred_at, data=notice.data
                )
                deliveries.append(delivery(Channel.WEBHOOK, {"body": body}, endpoint.id))
    session.execute(sa.insert(cast(sa.Table, Notification.__table__)), notifications)
    if deliveries:
        session.execute(sa.insert(cast(sa.Table, Delivery.__table__)), deliveries)
    return len(notifications)


def _request_id(request_id: str | None) -> str | None:
    return request_id if request_id and len(request_id) <= 128 else None


# -- the owner's view (called by the API, which commits) ---------------------------------


@dataclass(frozen=True)
class NotificationPage:
    """One page of a user's notifications, newest first."""

    items: list[Notification]
    next_cursor: PageKey | None


def list_notifications(
    *,
    session: Session,
    user_id: str,
    unread: bool | None = None,
    limit: int = 20,
    after: PageKey | None = None,
) -> NotificationPage:
    """The user's own notifications, newest first, optionally only (un)read ones."""
    query = sa.select(Notification).where(Notification.user_id == user_id)
    if unread is True:
        query = query.where(Notification.read_at.is_(None))
    elif unread is False:
        query = query.where(Notification.read_at.is_not(None))
    items, next_cursor = keyset_page(
        session,
        query,
        created_at=Notification.created_at,
        id=Notification.id,
        limit=limit,
        after=after,
    )
    return NotificationPage(items=items, next_cursor=next_cursor)


def mark_read(*, session: Session, user_id: str, notification_id: uuid.UUID) -> Notification:
    """Mark one of the user's notifications read (again is fine); 404 for anyone else's."""
    notification = session.scalar(
        sa.select(Notification).where(
            Notification.id == notification_id, Notification.user_id == user_id
        )
    )
    if notification is None:
        raise NotFoundError("No such notification.")
    if notification.read_at is None:
        notification.read_at = utcnow()
    return notification


# -- the delivery worker (its loop commits after each step) -------------------------------


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
    # The originating event's, so the send is logged under that request and trace.
    request_id: str | None = None
    traceparent: str | None = None


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
        row.id: (row.request_id, row.traceparent)
        for row in session.execute(
            sa.select(Notification.id, Notification.request_id, Notification.traceparent).where(
                Notification.id.in_({d.notification_id for d in deliveries})
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
        delivery.next_attempt_at = lease_until
        delivery.updated_at = now
        request_id, traceparent = correlation_ids.get(delivery.notification_id, (None, None))
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
                request_id=request_id,
                traceparent=traceparent,
            )
        )
    return jobs


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
        .values(next_attempt_at=now + timedelta(seconds=lease_seconds), updated_at=now)
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
    if job.attempt >= policy.max_attempts:
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
