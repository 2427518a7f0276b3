"""Event handlers: the use cases the API layer also uses, fed with an event's typed data.

Each runs inside the inbox transaction (`shared.inbox.inbox_handler`), which has parsed
the data through shared.contracts: the inbox row, the contact/notification/delivery rows
all commit together, or none does and the consumer retries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from services.notifications import contacts, services
from shared.contracts import (
    OrderCreatedV1,
    OrderStatusChangedV1,
    UserDeactivatedV1,
    UserEmailVerifiedV1,
    UserProfileChangedV1,
    UserReactivatedV1,
    UserRegisteredV1,
    UserRegistrationAttemptedV1,
    UserVerificationRequestedV1,
)
from shared.contracts.handlers import Handlers
from shared.db import utcnow
from shared.events import Event

CONSUMER = "notifications"
# Each handler gets its data parsed (and trusted by source) by shared.contracts.
HANDLERS = Handlers(CONSUMER)
WARNING_MAIL_INTERVAL = timedelta(days=1)


@HANDLERS.on(UserRegisteredV1)
def on_user_registered(session: Session, event: Event, data: UserRegisteredV1) -> None:
    """Remember the user's address and welcome them."""
    contacts.record_contact(
        session=session,
        user_id=data.user_id,
        email=data.email,
        name=data.name,
        version=data.version,
    )
    _notify(session, event, data.user_id)


# Write to the user's new address, by their new name.
HANDLERS.use_case(UserProfileChangedV1, contacts.update_contact_profile)
# Write to the user no more: cancel what is pending, create nothing new.
HANDLERS.use_case(UserDeactivatedV1, contacts.deactivate_contact)
# Write to the user again.
HANDLERS.use_case(UserReactivatedV1, contacts.reactivate_contact)


@HANDLERS.on(UserVerificationRequestedV1)
def on_verification_requested(
    session: Session, event: Event, data: UserVerificationRequestedV1
) -> None:
    """Mail the verification link: the one mail an unverified address receives."""
    contacts.remember_address(
        session=session, user_id=data.user_id, email=data.email, name=data.name
    )
    services.send_verification_mail(
        session=session,
        user_id=data.user_id,
        event_id=event.id,
        # The parsed values: the mail shows `expires_at` as a date, not as wire text.
        data=dataclasses.asdict(data),
        request_id=event.requestid,
        traceparent=event.traceparent,
    )


@HANDLERS.on(UserEmailVerifiedV1)
def on_email_verified(session: Session, _event: Event, data: UserEmailVerifiedV1) -> None:
    """The owner confirmed the address: mail may go to it from now on."""
    contacts.verify_contact(session=session, user_id=data.user_id)


@HANDLERS.on(UserRegistrationAttemptedV1)
def on_registration_attempted(
    session: Session, event: Event, data: UserRegistrationAttemptedV1
) -> None:
    """Warn the owner of an address that someone tried to register it again.

    At most one such mail a day: anyone can register any address, and so could otherwise
    fill its owner's mailbox. Every attempt still shows in the app.
    """
    since = utcnow() - WARNING_MAIL_INTERVAL
    recently = services.mailed_recently(
        session=session, user_id=data.user_id, event_type=event.type, since=since
    )
    _notify(session, event, data.user_id, mail=not recently)


@HANDLERS.on(OrderCreatedV1, OrderStatusChangedV1)
def on_order_event(
    session: Session, event: Event, data: OrderCreatedV1 | OrderStatusChangedV1
) -> None:
    """Tell the user about their order (created, or its status changed)."""
    _notify(session, event, data.user_id)


@HANDLERS.on_batch(OrderCreatedV1, OrderStatusChangedV1)
def on_order_events(
    session: Session, items: Sequence[tuple[Event, OrderCreatedV1 | OrderStatusChangedV1]]
) -> None:
    """`on_order_event` for a run of order events of a batch: their rows written per batch."""
    services.notify_many(
        session=session,
        notices=[
            services.Notice(
                user_id=data.user_id,
                event_id=event.id,
                event_type=event.type,
                occurred_at=event.time,
                data=event.data,
                request_id=event.requestid,
                traceparent=event.traceparent,
            )
            for event, data in items
        ],
    )


def _notify(session: Session, event: Event, user_id: str, *, mail: bool = True) -> None:
    # Templates and webhook bodies take the wire form of the data, which the catalogue
    # has validated by now: a webhook receiver sees the fields the contract publishes.
    services.notify(
        session=session,
        user_id=user_id,
        event_id=event.id,
        event_type=event.type,
        occurred_at=event.time,
        data=event.data,
        request_id=event.requestid,
        traceparent=event.traceparent,
        mail=mail,
    )
