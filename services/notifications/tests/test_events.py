"""Events in, notifications and deliveries out (handlers + inbox, on the real PostgreSQL)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from services.notifications import services
from services.notifications.models import Contact, Delivery, Notification, db
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import (
    order_created,
    order_status_changed,
    user_deactivated,
    user_email_verified,
    user_registered,
)
from shared.events import Event, InvalidEvent

pytestmark = pytest.mark.integration

ADA = "user-ada"


def _rows(app: Flask, model: type) -> list:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(model)))
        db.session.expunge_all()
        return rows


def _deliveries(app: Flask) -> list[tuple[str, str]]:
    return sorted((d.channel, d.status) for d in _rows(app, Delivery))


def _add_webhook(app: Flask, user_id: str, event_types: list[str]) -> None:
    with app.app_context():
        services.create_webhook(
            session=db.session(),
            user_id=user_id,
            url="http://127.0.0.1:9/hook",
            event_types=event_types,
            description=None,
            guard=TargetGuard(allow_private=True),
            max_per_user=10,
        )


def test_a_registered_user_gets_a_contact_a_welcome_and_a_welcome_email(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA, "ada@example.com", "Ada"))
    consume(user_email_verified(ADA))  # the address owner followed the link

    [contact] = _rows(app, Contact)
    assert (contact.email, contact.name, contact.active) == ("ada@example.com", "Ada", True)
    [notification] = _rows(app, Notification)
    assert notification.title == "Welcome to Flask Suite"
    assert _deliveries(app) == [("email", "pending")]


def test_the_same_event_twice_changes_nothing_the_second_time(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    event = order_created(ADA)
    consume(event)
    consume(event)

    assert len(_rows(app, Notification)) == 1
    assert _deliveries(app) == [("email", "pending")]


def test_an_order_event_goes_to_the_webhooks_subscribed_to_its_type_only(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    _add_webhook(app, ADA, ["order.created"])
    _add_webhook(app, ADA, ["order.status_changed"])
    _add_webhook(app, "someone-else", ["order.created"])
    order = order_created(ADA)

    consume(order)

    with app.app_context():
        notification = db.session.scalar(
            sa.select(Notification).where(Notification.event_id == order.id)
        )
        assert notification is not None
        assert sorted(d.channel for d in notification.deliveries) == ["email", "webhook"]


def test_a_status_change_becomes_a_notification_for_the_order_s_owner(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    order_id = str(uuid.uuid4())
    consume(order_status_changed(ADA, order_id, "pending", "confirmed"))

    [notification] = _rows(app, Notification)
    assert notification.user_id == ADA
    assert notification.title == f"Your order {order_id[:8]} is now confirmed"


def test_deactivation_cancels_pending_deliveries_and_stops_new_ones(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    _add_webhook(app, ADA, ["order.created"])
    consume(order_created(ADA))

    consume(user_deactivated(ADA))
    consume(order_created(ADA))

    assert _deliveries(app) == [("email", "cancelled")] * 2 + [("webhook", "cancelled")]
    assert all(d.last_error == services.USER_DEACTIVATED for d in _rows(app, Delivery))
    assert len(_rows(app, Notification)) == 3  # still visible in the app


def test_a_deactivation_that_overtakes_the_registration_still_wins(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_deactivated(ADA))
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link

    [contact] = _rows(app, Contact)
    assert contact.active is False and contact.email == "ada@example.com"
    assert _deliveries(app) == []


@pytest.mark.parametrize(
    "data",
    [
        {"user_id": ADA, "version": 1},
        {"user_id": ADA, "email": "not-an-email", "name": "Ada", "version": 1},
        {"user_id": ["a"], "email": "ada@example.com", "name": "Ada", "version": 1},
        {"user_id": ADA, "email": "ada@example.com", "name": "Ada", "version": "1"},
        {"user_id": ADA, "email": "ada@example.com", "name": "Ada", "version": 1, "vip": True},
    ],
)
def test_an_event_with_invalid_data_raises_and_leaves_nothing_behind(
    app: Flask, consume: Callable[[Event], None], data: dict
) -> None:
    with pytest.raises(InvalidEvent, match="user.registered.v1 data is invalid"):
        consume(dataclasses.replace(user_registered(ADA), data=data))

    assert _rows(app, Contact) == [] and _rows(app, Notification) == []
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM inbox")) == 0


def test_a_notification_keeps_the_request_and_trace_of_its_event(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    consume(dataclasses.replace(order_created(ADA), requestid="req-42", traceparent=traceparent))

    [notification] = _rows(app, Notification)
    assert (notification.request_id, notification.traceparent) == ("req-42", traceparent)


def test_correlation_ids_that_are_not_well_formed_are_dropped_and_the_event_still_applies(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(dataclasses.replace(order_created(ADA), requestid="r" * 500, traceparent="x" * 500))

    [notification] = _rows(app, Notification)
    assert (notification.request_id, notification.traceparent) == (None, None)
