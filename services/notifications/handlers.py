"""Event handlers: the use cases the API layer also uses, fed with an event's typed data.

Each runs inside the inbox transaction (`shared.inbox.inbox_handler`), which has parsed
the data through shared.contracts: the inbox row, the contact/notification/delivery rows
all commit together, or none does and the consumer retries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from services.notifications import services
from shared.contracts import (
    OrderCreatedV1,
    OrderStatusChangedV1,
    UserDeactivatedV1,
    UserRegisteredV1,
)
from shared.events import Event

CONSUMER = "notifications"


def on_user_registered(session: Session, event: Event, data: UserRegisteredV1) -> None:
    """Remember the user's address and welcome them."""
    services.record_contact(session=session, user_id=data.user_id, email=data.email, name=data.name)
    _notify(session, event, data.user_id)


def on_user_deactivated(session: Session, _event: Event, data: UserDeactivatedV1) -> None:
    """Write to the user no more: cancel what is pending, create nothing new."""
    services.deactivate_contact(session=session, user_id=data.user_id)


def on_order_event(
    session: Session, event: Event, data: OrderCreatedV1 | OrderStatusChangedV1
) -> None:
    """Tell the user about their order (created, or its status changed)."""
    _notify(session, event, data.user_id)


def _notify(session: Session, event: Event, user_id: str) -> None:
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
    )


# The data each handler gets is parsed (and trusted by source) by shared.contracts.
HANDLERS: Mapping[str, Callable[[Session, Event, Any], None]] = {
    "user.registered": on_user_registered,
    "user.deactivated": on_user_deactivated,
    "order.created": on_order_event,
    "order.status_changed": on_order_event,
}
