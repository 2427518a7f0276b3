"""The consumer on the real RabbitMQ: duplicates change nothing, poison goes to the DLQ.

These tests get a vhost of their own (not the session's `amqp_url`): other services' tests
publish the same event types to the same exchange, which our queue would otherwise
receive, and ours would land in theirs.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pika
import pytest
import sqlalchemy as sa
from flask import Flask

from services.notifications.handlers import CONSUMER, HANDLERS
from services.notifications.models import Contact, Delivery, Notification, db
from services.notifications.tests.conftest import (
    SmtpSink,
    deliver,
    order_created,
    settings_for,
    user_deactivated,
    user_email_verified,
    user_registered,
)
from services.notifications.worker import build_consumer
from shared.events import Event
from shared.messaging import EXCHANGE, Publisher, declare_topology, dlq_name
from tests.support import create_vhost, delete_vhost, wait_for

pytestmark = pytest.mark.integration

RETRY_DELAYS = [0.05]  # one quick retry, then the DLQ
ADA = "user-ada"


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A vhost on the real broker for this module alone."""
    vhost, url = create_vhost("notifications")
    yield url
    delete_vhost(vhost)


@pytest.fixture
def consumer(app: Flask, broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The service's consumer (as `worker consume` builds it) running in a thread."""
    monkeypatch.setitem(app.config, "AMQP_URL", broker_url)
    monkeypatch.setitem(app.config, "EVENT_RETRY_DELAYS", RETRY_DELAYS)
    with _channel(broker_url) as channel:
        # Declared up front so that what the test publishes is routable at once.
        declare_topology(
            channel,
            CONSUMER,
            list(HANDLERS),
            delivery_limit=int(app.config["EVENT_DELIVERY_LIMIT"]),
            retry_delays=RETRY_DELAYS,
        )
    running = build_consumer(app)
    thread = threading.Thread(target=running.run, name="consumer")
    thread.start()
    yield
    running.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


class _channel:
    """A short-lived channel on the broker, for the test's own declarations and reads."""

    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))

    def __enter__(self):
        return self.connection.channel()

    def __exit__(self, *exc_info: object) -> None:
        self.connection.close()


def _publish(url: str, *events: Event) -> None:
    with Publisher(url) as publisher:
        assert publisher.publish_batch(list(events)) == [True] * len(events)


def _contact_exists(app: Flask, user_id: str) -> bool:
    with app.app_context():
        return db.session.get(Contact, user_id) is not None


def _count(app: Flask, model: type, *where: sa.ColumnElement[bool]) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)))


@pytest.mark.usefixtures("consumer")
def test_the_same_event_delivered_five_times_makes_one_notification_and_one_email(
    app: Flask, broker_url: str, smtp_sink: SmtpSink
) -> None:
    event = user_registered(ADA, "ada@example.com", "Ada")

    _publish(broker_url, user_email_verified(ADA), *[event] * 5)
    # One consumer takes the queue in order: once this one is applied, so are the five.
    _publish(broker_url, user_deactivated("sentinel"))
    wait_for(lambda: _contact_exists(app, "sentinel"), timeout=10)

    assert _count(app, Notification, Notification.event_id == event.id) == 1
    assert _count(app, Delivery, Delivery.user_id == ADA) == 1
    deliver(app, settings_for(app, smtp_sink.port))
    assert [message["To"] for message in smtp_sink.messages()] == ["ada@example.com"]


@pytest.mark.usefixtures("consumer")
def test_poison_events_go_to_the_dead_letter_queue_and_the_next_event_is_still_processed(
    app: Flask, broker_url: str
) -> None:
    with _channel(broker_url) as channel:
        channel.basic_publish(EXCHANGE, "order.created", b"{not json")
    invalid = dataclasses.replace(order_created(ADA), data={"order_id": "o-1"})
    good = order_created(ADA)

    _publish(broker_url, invalid, good)

    wait_for(lambda: _count(app, Notification, Notification.event_id == good.id) == 1, timeout=10)
    with _channel(broker_url) as channel:
        wait_for(
            lambda: (
                channel.queue_declare(dlq_name(CONSUMER), passive=True).method.message_count == 2
            ),
            timeout=10,
        )
        reasons = set()
        for _ in range(2):
            _method, properties, _body = channel.basic_get(dlq_name(CONSUMER), auto_ack=True)
            reasons.add(properties.headers["x-dlq-reason"])
    # Data no retry can fix is dead-lettered at once, without going through the retries.
    assert reasons == {"malformed", "invalid-data"}
    assert _count(app, Notification) == 1


@pytest.mark.usefixtures("consumer")
def test_a_user_registered_sent_by_orders_changes_no_contact_and_is_dead_lettered_with_why(
    app: Flask, broker_url: str
) -> None:
    # Anyone holding the orders service's broker account could try to speak for auth.
    forged = dataclasses.replace(user_registered(ADA, "mallory@example.com"), source="/orders")
    genuine = user_registered("user-bob", "bob@example.com")

    _publish(broker_url, forged, genuine)

    wait_for(lambda: _count(app, Contact, Contact.user_id == "user-bob") == 1, timeout=10)
    with _channel(broker_url) as channel:
        wait_for(
            lambda: (
                channel.queue_declare(dlq_name(CONSUMER), passive=True).method.message_count == 1
            ),
            timeout=10,
        )
        _method, properties, body = channel.basic_get(dlq_name(CONSUMER), auto_ack=True)
    assert properties.message_id == forged.id
    assert properties.headers["x-dlq-reason"] == "invalid-data"
    assert "user.registered must come from /auth, not '/orders'" in properties.headers["x-error"]
    assert _count(app, Contact, Contact.user_id == ADA) == 0
    assert _count(app, Notification, Notification.user_id == ADA) == 0
