"""Until its owner verifies it, an address receives the verification mail and nothing else
(handlers + delivery worker, on the real PostgreSQL and a local SMTP server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from services.notifications import deliveries
from services.notifications.models import Contact, Delivery, Notification, db
from services.notifications.tests.conftest import (
    SmtpSink,
    deliver,
    order_created,
    settings_for,
    user_email_verified,
    user_registered,
    user_registration_attempted,
    user_verification_requested,
)
from shared.events import Event

pytestmark = pytest.mark.integration

ADA = "user-ada"


def _deliveries(app: Flask) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(Delivery.channel, Delivery.status, Delivery.last_error).order_by(
                Delivery.created_at
            )
        ).all()
        return [tuple(row) for row in rows]


def _in_app(app: Flask) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(Notification.event_type, Notification.body).order_by(Notification.created_at)
        ).all()
        return [tuple(row) for row in rows]


def test_an_unverified_account_gets_exactly_one_mail_the_link(
    app: Flask, consume: Callable[[Event], None], smtp_sink: SmtpSink
) -> None:
    consume(user_registered(ADA, "ada@example.com", "Ada"))
    link = user_verification_requested(ADA, "ada@example.com", "Ada")
    consume(link)
    consume(order_created(ADA))  # an unverified account may log in and order
    consume(user_registration_attempted(ADA))
    settings = settings_for(app, smtp_sink.port)
    deliver(app, settings)
    deliver(app, settings)

    [message] = smtp_sink.messages()
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Verify your email address"
    assert link.data["verify_url"] in message.get_body(("plain",)).get_content()
    # In the app, whoever holds the account sees that a link went out, never the link.
    bodies = dict(_in_app(app))
    assert "tok-" not in bodies["user.verification_requested"]
    assert set(bodies) == {
        "user.registered",
        "user.verification_requested",
        "order.created",
        "user.registration_attempted",
    }
    assert [d[:2] for d in _deliveries(app)] == [("email", "sent")]


def test_a_mail_created_before_the_address_was_known_unverified_is_cancelled(
    app: Flask, consume: Callable[[Event], None], smtp_sink: SmtpSink
) -> None:
    consume(order_created(ADA))  # orders' event overtook auth's user.registered
    consume(user_registered(ADA, "ada@example.com", "Ada"))
    deliver(app, settings_for(app, smtp_sink.port))
    assert smtp_sink.messages() == []
    assert _deliveries(app) == [("email", "cancelled", deliveries.ADDRESS_UNVERIFIED)]


def test_once_verified_the_held_welcome_and_later_mail_go_out(
    app: Flask, consume: Callable[[Event], None], smtp_sink: SmtpSink
) -> None:
    consume(user_registered(ADA, "ada@example.com", "Ada"))
    consume(user_verification_requested(ADA, "ada@example.com", "Ada"))
    consume(user_email_verified(ADA))
    consume(user_email_verified(ADA))  # a second verification changes nothing
    consume(user_registration_attempted(ADA))
    settings = settings_for(app, smtp_sink.port)
    deliver(app, settings)

    subjects = sorted(message["Subject"] for message in smtp_sink.messages())
    assert subjects == [
        "Someone tried to register with your email address",
        "Verify your email address",
        "Welcome to Flask Suite",
    ]
    with app.app_context():
        contact = db.session.get(Contact, ADA)
        assert contact is not None and contact.email_verified


def test_the_verification_may_arrive_before_the_registration(
    app: Flask, consume: Callable[[Event], None], smtp_sink: SmtpSink
) -> None:
    consume(user_email_verified(ADA))
    consume(user_registered(ADA, "ada@example.com", "Ada"))
    deliver(app, settings_for(app, smtp_sink.port))
    assert [m["Subject"] for m in smtp_sink.messages()] == ["Welcome to Flask Suite"]


def test_repeated_registration_attempts_mail_the_owner_once_a_day(
    app: Flask, consume: Callable[[Event], None], smtp_sink: SmtpSink
) -> None:
    consume(user_email_verified(ADA))
    consume(user_registered(ADA, "ada@example.com", "Ada"))
    for _ in range(3):
        consume(user_registration_attempted(ADA))
    deliver(app, settings_for(app, smtp_sink.port))

    warnings = [
        m for m in smtp_sink.messages() if m["Subject"].startswith("Someone tried to register")
    ]
    assert len(warnings) == 1
    attempts = [t for t, _ in _in_app(app) if t == "user.registration_attempted"]
    assert len(attempts) == 3  # each one is still listed in the app
