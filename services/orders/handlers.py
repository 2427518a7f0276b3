"""Event handlers of the orders service: auth's user events keep the customer projection.

Each handler runs inside the inbox transaction (`shared.inbox.inbox_handler`), so the
inbox row, the change and the events it records commit together, and a redelivered event
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from services.orders import services
from services.orders.models import Inbox, db
from shared.events import Event, InvalidEvent
from shared.inbox import inbox_handler

CONSUMER = "orders"


def _text(data: Mapping[str, Any], name: str, max_length: int) -> str:
    """A required, non-empty string field of an event's data."""
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        # Retrying cannot fix the payload: the consumer dead-letters it at once.
        raise InvalidEvent(f"data.{name} must be a string of 1 to {max_length} characters")
    return value


def _version(data: Mapping[str, Any]) -> int:
    """The user's version an event carries: a positive integer."""
    value = data.get("version")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidEvent("data.version must be a positive integer")
    return value


def on_user_registered(session: Session, event: Event) -> None:
    """user.registered: remember the customer (email and name, active)."""
    services.record_customer(
        session=session,
        user_id=_text(event.data, "user_id", 64),
        email=_text(event.data, "email", 320),
        name=_text(event.data, "name", 200),
        version=_version(event.data),
    )


def on_user_profile_changed(session: Session, event: Event) -> None:
    """user.profile_changed: the customer's new email and name."""
    services.update_customer_profile(
        session=session,
        user_id=_text(event.data, "user_id", 64),
        email=_text(event.data, "email", 320),
        name=_text(event.data, "name", 200),
        version=_version(event.data),
    )


def on_user_deactivated(session: Session, event: Event) -> None:
    """user.deactivated: refuse the user's new orders and cancel the open ones."""
    services.deactivate_customer(
        session=session, user_id=_text(event.data, "user_id", 64), version=_version(event.data)
    )


def on_user_reactivated(session: Session, event: Event) -> None:
    """user.reactivated: accept the user's orders again."""
    services.reactivate_customer(
        session=session, user_id=_text(event.data, "user_id", 64), version=_version(event.data)
    )


HANDLERS: Mapping[str, Callable[[Session, Event], None]] = {
    "user.registered": on_user_registered,
    "user.profile_changed": on_user_profile_changed,
    "user.deactivated": on_user_deactivated,
    "user.reactivated": on_user_reactivated,
}


def event_handler(app: Flask) -> Callable[[Event], None]:
    """What the consumer calls per event: inbox row + handler in one committed transaction."""
    return inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
