"""Event handlers: validate an event's data, then call the use cases the API layer also uses.

Each runs inside the inbox transaction (`shared.inbox.inbox_handler`): the inbox row, the
contact/notification/delivery rows all commit together, or none does and the consumer
retries. Invalid data raises, so the event is retried and then dead-lettered, never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta

from sqlalchemy.orm import Session

from services.notifications import services
from services.notifications.schemas import load_event_data
from shared.db import utcnow
from shared.events import Event

CONSUMER = "notifications"
WARNING_MAIL_INTERVAL = timedelta(days=1)


def on_user_registered(session: Session, event: Event) -> None:
    """Remember the user's address and welcome them."""
    data = load_event_data(event.type, event.data)
    services.record_contact(
        session=session,
        user_id=data["user_id"],
        email=data["email"],
        name=data["name"],
        version=data["version"],
    )
    _notify(session, event, data)


def on_user_profile_changed(session: Session, event: Event) -> None:
    """Write to the user's new address, by their new name."""
    data = load_event_data(event.type, event.data)
    services.update_contact_profile(
        session=session,
        user_id=data["user_id"],
        email=data["email"],
        name=data["name"],
        version=data["version"],
    )


def on_user_deactivated(session: Session, event: Event) -> None:
    """Write to the user no more: cancel what is pending, create nothing new."""
    data = load_event_data(event.type, event.data)
    services.deactivate_contact(session=session, user_id=data["user_id"], version=data["version"])


def on_user_reactivated(session: Session, event: Event) -> None:
    """Write to the user again."""
    data = load_event_data(event.type, event.data)
    services.reactivate_contact(session=session, user_id=data["user_id"], version=data["version"])


def on_verification_requested(session: Session, event: Event) -> None:
    """Mail the verification link: the one mail an unverified address receives."""
    data = load_event_data(event.type, event.data)
    services.remember_address(
        session=session, user_id=data["user_id"], email=data["email"], name=data["name"]
    )
    services.send_verification_mail(
        session=session,
        user_id=data["user_id"],
        event_id=event.id,
        data=data,
        request_id=event.requestid,
        traceparent=event.traceparent,
    )


def on_email_verified(session: Session, event: Event) -> None:
    """The owner confirmed the address: mail may go to it from now on."""
    data = load_event_data(event.type, event.data)
    services.verify_contact(session=session, user_id=data["user_id"])


def on_registration_attempted(session: Session, event: Event) -> None:
    """Warn the owner of an address that someone tried to register it again.

    At most one such mail a day: anyone can register any address, and so could otherwise
    fill its owner's mailbox. Every attempt still shows in the app.
    """
    data = load_event_data(event.type, event.data)
    since = utcnow() - WARNING_MAIL_INTERVAL
    recently = services.mailed_recently(
        session=session, user_id=data["user_id"], event_type=event.type, since=since
    )
    _notify(session, event, data, mail=not recently)


def on_order_event(session: Session, event: Event) -> None:
    """Tell the user about their order (created, or its status changed)."""
    _notify(session, event, load_event_data(event.type, event.data))


def _notify(
    session: Session, event: Event, data: Mapping[str, object], *, mail: bool = True
) -> None:
    services.notify(
        session=session,
        user_id=str(data["user_id"]),
        event_id=event.id,
        event_type=event.type,
        occurred_at=event.time,
        data=data,
        request_id=event.requestid,
        traceparent=event.traceparent,
        mail=mail,
    )


HANDLERS: Mapping[str, Callable[[Session, Event], None]] = {
    "user.registered": on_user_registered,
    "user.profile_changed": on_user_profile_changed,
    "user.deactivated": on_user_deactivated,
    "user.reactivated": on_user_reactivated,
    "user.verification_requested": on_verification_requested,
    "user.email_verified": on_email_verified,
    "user.registration_attempted": on_registration_attempted,
    "order.created": on_order_event,
    "order.status_changed": on_order_event,
}
