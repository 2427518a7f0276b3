"""Events in, notifications and deliveries out (handlers + inbox, on the real PostgreSQL)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from services.notifications import contacts, deliveries, services, webhooks
from services.notifications.models import Contact, Delivery, Notification, db
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import (
    committed,
    order_created,
    order_status_changed,
    user_deactivated,
    user_email_verified,
    user_profile_changed,
    user_reactivated,
    user_registered,
)
from shared.events import Event, InvalidEvent
from shared.uow import commit_forbidden

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
        committed(
            webhooks.create_webhook,
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
    assert all(d.last_error == deliveries.USER_DEACTIVATED for d in _rows(app, Delivery))
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


def test_a_reactivated_user_is_written_to_again(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA, version=2))
    consume(user_deactivated(ADA, version=3))
    consume(user_reactivated(ADA, version=4))
    consume(order_created(ADA))

    [contact] = _rows(app, Contact)
    assert (contact.active, contact.active_version) == (True, 4)
    # The welcome was cancelled by the deactivation; the new order's mail goes out.
    assert _deliveries(app) == [("email", "cancelled"), ("email", "pending")]


def test_a_profile_change_moves_the_contact_to_the_new_address_and_name(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA, "ada@example.com", "Ada"))
    consume(user_profile_changed(ADA, "ada@lovelace.example", "Ada Lovelace", version=2))

    [contact] = _rows(app, Contact)
    assert (contact.email, contact.name, contact.profile_version) == (
        "ada@lovelace.example",
        "Ada Lovelace",
        2,
    )


def test_user_events_out_of_order_leave_the_contact_as_the_latest_version_says(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    registered = user_registered(ADA, "ada@example.com", "Ada")
    # v4 deactivates; v2 (re-activation) and v3 (a new name) arrive after it, then v1 twice.
    consume(user_deactivated(ADA, version=4))
    consume(user_reactivated(ADA, version=2))
    consume(user_profile_changed(ADA, "ada@example.com", "Ada L.", version=3))
    consume(registered)
    consume(registered)  # a redelivery: the inbox drops it
    consume(dataclasses.replace(registered, id=str(uuid.uuid4())))  # a re-publication

    [contact] = _rows(app, Contact)
    assert (contact.active, contact.active_version) == (False, 4)
    assert (contact.email, contact.name, contact.profile_version) == (
        "ada@example.com",
        "Ada L.",
        3,
    )
    consume(order_created(ADA))
    assert ("email", "pending") not in _deliveries(app)


def test_no_use_case_commits_the_transaction_of_its_caller(app: Flask) -> None:
    now = datetime.now(UTC)
    with app.app_context():
        session = db.session()
        with commit_forbidden(session):
            contacts.record_contact(
                session=session, user_id=ADA, email="a@x.org", name="Ada", version=1
            )
            contacts.update_contact_profile(
                session=session, user_id=ADA, email="a@x.org", name="Ann", version=2
            )
            contacts.verify_contact(session=session, user_id=ADA)
            notification_id = services.notify(
                session=session,
                user_id=ADA,
                event_id=str(uuid.uuid4()),
                event_type="order.created",
                occurred_at=now,
                data=order_created(ADA).data,
            )
            services.mark_read(session=session, user_id=ADA, notification_id=notification_id)
            endpoint = webhooks.create_webhook(
                session=session,
                user_id=ADA,
                url="http://127.0.0.1:9/hook",
                event_types=["order.created"],
                description=None,
                guard=TargetGuard(allow_private=True),
                max_per_user=10,
            )
            webhooks.delete_webhook(session=session, user_id=ADA, webhook_id=endpoint.id)
            now += timedelta(seconds=1)  # the new deliveries are due
            jobs = deliveries.claim_due_deliveries(
                session=session, now=now, limit=10, lease_seconds=60, max_attempts=3
            )
            assert deliveries.renew_claim(session=session, job=jobs[0], now=now, lease_seconds=60)
            deliveries.record_delivery_failed(
                session=session,
                job=jobs[0],
                error="refused",
                now=now,
                policy=deliveries.RetryPolicy(max_attempts=1, base_seconds=1, cap_seconds=1),
            )
            deliveries.retry_failed_deliveries(session=session, now=now)
            contacts.deactivate_contact(session=session, user_id=ADA, version=3)
            contacts.reactivate_contact(session=session, user_id=ADA, version=4)
        session.rollback()
    assert _rows(app, Contact) == [] and _rows(app, Notification) == []
