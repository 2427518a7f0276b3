"""Use cases of the notifications service: notifications and what they are sent as.

Contacts (the projection of auth's users) are in `contacts`, the delivery worker's claims
and records in `deliveries`, webhook endpoints (register, list, delete) in `webhooks`.

No Flask here, and no use case commits: the entry point owns the transaction
(`shared.uow`). The API views commit each request; the inbox commits the event's row and its
effect together.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from services.notifications.models import (
    Channel,
    Contact,
    Delivery,
    DeliveryStatus,
    Notification,
    WebhookEndpoint,
)
from services.notifications.rendering import render
from services.notifications.webhooks import ENDPOINT_DISABLED, webhook_body
from shared.context import trace_id_of
from shared.db import utcnow
from shared.errors import NotFoundError
from shared.pagination import PageKey, keyset_page


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


@dataclass(frozen=True)
class Notice:
    """One event to tell its user about: what `notify_many` takes."""

    user_id: str
    event_id: str
    event_type: str
    occurred_at: datetime
    data: Mapping[str, Any]
    request_id: str | None = None
    traceparent: str | None = None
    mail: bool = True


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
) -> uuid.UUID:
    """Turn one event into the user's notification plus an email and webhook deliveries;
    the notification's id.

    `mail=False` keeps it in the app (and webhooks): the caller decided it is not worth a mail.
    The rows are those of `notify_many`, which writes them: one path for one event or many.
    """
    notice = Notice(
        user_id=user_id,
        event_id=event_id,
        event_type=event_type,
        occurred_at=occurred_at,
        data=data,
        request_id=request_id,
        traceparent=traceparent,
        mail=mail,
    )
    (notification_id,) = notify_many(session=session, notices=[notice])
    return notification_id


def notify_many(*, session: Session, notices: Sequence[Notice]) -> list[uuid.UUID]:
    """Each event's notification, email and webhook deliveries; the notifications' ids, in
    the order of `notices` (made here, so the rows written are not read back).

    Written by hand rather than through the ORM's unit of work, because this is the
    consumer's hot path (every order event passes here): the contacts and webhook
    endpoints of the batch's users are read with one query each, and the notification
    and delivery rows are inserted with one multi-row INSERT per table (SQLAlchemy's
    insertmanyvalues), instead of a lookup, a flush and two INSERTs per event.
    """
    if not notices:
        return []
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
        sa.select(
            WebhookEndpoint.id,
            WebhookEndpoint.user_id,
            WebhookEndpoint.event_types,
            WebhookEndpoint.disabled_at,
        )
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
            channel: Channel,
            payload: dict[str, Any],
            endpoint_id: uuid.UUID | None = None,
            disabled: bool = False,
        ) -> dict[str, Any]:
            return {
                "id": uuid.uuid4(),
                "notification_id": notification_id,  # noqa: B023 (used within the iteration)
                "user_id": notice.user_id,  # noqa: B023
                "channel": channel.value,
                "endpoint_id": endpoint_id,
                "payload": payload,
                # To a disabled endpoint: kept, not sent, so that `recover` can send it.
                "status": (DeliveryStatus.CANCELLED if disabled else DeliveryStatus.PENDING).value,
                "attempts": 0,
                "last_error": ENDPOINT_DISABLED if disabled else None,
                "next_attempt_at": None if disabled else now,  # noqa: B023
                "sent_at": None,
                "claimed_until": None,
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
                deliveries.append(
                    delivery(
                        Channel.WEBHOOK,
                        {"body": body},
                        endpoint.id,
                        disabled=endpoint.disabled_at is not None,
                    )
                )
    session.execute(sa.insert(cast(sa.Table, Notification.__table__)), notifications)
    if deliveries:
        session.execute(sa.insert(cast(sa.Table, Delivery.__table__)), deliveries)
    return [row["id"] for row in notifications]


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
    # The page shows each delivery's status, never its payload (a whole rendered mail).
    query = (
        sa.select(Notification)
        .options(selectinload(Notification.deliveries).defer(Delivery.payload))
        .where(Notification.user_id == user_id)
    )
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
