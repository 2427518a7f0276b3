"""Event handlers of the orders service: auth's user events keep the customer projection.

Each handler runs inside the inbox transaction (`shared.inbox.inbox_handler`), so the
inbox row, the change and the events it records commit together, and a redelivered event
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from sqlalchemy.orm import Session

from services.orders import services
from services.orders.models import Inbox, db
from shared.contracts import (
    UserDeactivatedV1,
    UserProfileChangedV1,
    UserReactivatedV1,
    UserRegisteredV1,
)
from shared.contracts.handlers import Handlers
from shared.events import Event
from shared.inbox import inbox_handler

CONSUMER = "orders"
# Each handler gets its data parsed (and trusted by source) by shared.contracts.
HANDLERS = Handlers(CONSUMER)


@HANDLERS.on(UserRegisteredV1)
def on_user_registered(session: Session, _event: Event, data: UserRegisteredV1) -> None:
    """user.registered: remember the customer (email and name, active)."""
    services.record_customer(
        session=session,
        user_id=data.user_id,
        email=data.email,
        name=data.name,
        version=data.version,
    )


@HANDLERS.on(UserProfileChangedV1)
def on_user_profile_changed(session: Session, _event: Event, data: UserProfileChangedV1) -> None:
    """user.profile_changed: the customer's new email and name."""
    services.update_customer_profile(
        session=session,
        user_id=data.user_id,
        email=data.email,
        name=data.name,
        version=data.version,
    )


@HANDLERS.on(UserDeactivatedV1)
def on_user_deactivated(session: Session, _event: Event, data: UserDeactivatedV1) -> None:
    """user.deactivated: refuse the user's new orders and cancel the open ones."""
    services.deactivate_customer(session=session, user_id=data.user_id, version=data.version)


@HANDLERS.on(UserReactivatedV1)
def on_user_reactivated(session: Session, _event: Event, data: UserReactivatedV1) -> None:
    """user.reactivated: accept the user's orders again."""
    services.reactivate_customer(session=session, user_id=data.user_id, version=data.version)


def event_handler(app: Flask) -> Callable[[Event], None]:
    """What the consumer calls per event: inbox row + handler in one committed transaction."""
    return inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
