"""`flask deliveries retry-failed`: an operator sends failed deliveries again (real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from services.notifications import webhooks
from services.notifications.models import Delivery, Notification, db
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import (
    SmtpSink,
    committed,
    deliver,
    now_utc,
    order_created,
    settings_for,
    user_email_verified,
    user_registered,
)
from shared.events import Event

pytestmark = pytest.mark.integration

ADA = "user-ada"


def _fail(app: Flask, event_type: str, channel: str, *, days_ago: float) -> None:
    """Mark the delivery of `event_type` on `channel` failed for good, `days_ago`."""
    with app.app_context():
        db.session.execute(
            sa.update(Delivery)
            .where(
                Delivery.channel == channel,
                Delivery.notification_id.in_(
                    sa.select(Notification.id).where(Notification.event_type == event_type)
                ),
            )
            .values(
                status="failed",
                attempts=40,
                last_error="gave up",
                next_attempt_at=None,
                updated_at=now_utc() - timedelta(days=days_ago),
            )
        )
        db.session.commit()


def _state(app: Flask) -> list[tuple[str, str, str, int]]:
    """(event type, channel, status, attempts) of every delivery."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(Notification.event_type, Delivery.channel, Delivery.status, Delivery.attempts)
            .join(Delivery.notification)
            .order_by(Notification.event_type, Delivery.channel)
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]


@pytest.fixture
def failed(app: Flask, consume: Callable[[Event], None]) -> None:
    """An old failed welcome mail, a recent failed order mail, a recent failed webhook."""
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    with app.app_context():
        committed(
            webhooks.create_webhook,
            session=db.session(),
            user_id=ADA,
            url="http://127.0.0.1:9/hook",
            event_types=["order.created"],
            description=None,
            guard=TargetGuard(allow_private=True),
            max_per_user=10,
        )
    consume(order_created(ADA))
    _fail(app, "user.registered", "email", days_ago=3)
    _fail(app, "order.created", "email", days_ago=0)
    _fail(app, "order.created", "webhook", days_ago=0)


@pytest.mark.usefixtures("failed")
def test_retry_failed_queues_only_the_channel_and_period_asked_for(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["deliveries", "retry-failed", "--channel", "email", "--since", "1d"]
    )

    assert result.exit_code == 0, result.output
    assert "1 failed delivery queued again" in result.output
    assert _state(app) == [
        ("order.created", "email", "pending", 0),  # a fresh set of attempts, due now
        ("order.created", "webhook", "failed", 40),  # another channel
        ("user.registered", "email", "failed", 40),  # failed three days ago: before --since
    ]


@pytest.mark.usefixtures("failed")
def test_retry_failed_without_options_queues_every_failed_delivery_and_they_go_out(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    result = app.test_cli_runner().invoke(args=["deliveries", "retry-failed"])

    assert result.exit_code == 0, result.output
    assert "3 failed deliveries queued again" in result.output
    assert {status for _type, _channel, status, _attempts in _state(app)} == {"pending"}
    deliver(app, settings_for(app, smtp_sink.port))
    subjects = sorted(message["Subject"] for message in smtp_sink.messages())
    assert len(subjects) == 2
    assert subjects[0].startswith("We received your order")
    assert subjects[1].startswith("Welcome")


@pytest.mark.usefixtures("failed")
@pytest.mark.parametrize(
    "args",
    [
        ["--since", "yesterday"],
        ["--since", "-2d"],
        ["--channel", "sms"],
    ],
)
def test_retry_failed_refuses_what_it_cannot_read_and_changes_nothing(
    app: Flask, args: list[str]
) -> None:
    before = _state(app)

    result = app.test_cli_runner().invoke(args=["deliveries", "retry-failed", *args])

    assert result.exit_code == 2
    assert "Invalid value" in result.output
    assert _state(app) == before


@pytest.mark.usefixtures("failed")
def test_retry_failed_takes_an_iso_8601_time(app: Flask) -> None:
    since = (now_utc() - timedelta(days=4)).isoformat()

    result = app.test_cli_runner().invoke(args=["deliveries", "retry-failed", "--since", since])

    assert "3 failed deliveries queued again" in result.output
