"""Each service's own broker user (shared.broker_users) on the real RabbitMQ: it can do its
job, and the broker refuses it anything else."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from shared import contracts, dlq
from shared.events import Event, new_event
from shared.messaging import (
    EXCHANGE,
    PRODUCER_HEADER,
    Consumer,
    Publisher,
    broker_user,
    dlq_name,
    event_properties,
    queue_name,
)
from shared.outbox import OutboxMixin, record_event, relay_outbox_once
from shared.worker import consumer_from_config
from tests.support import (
    create_service_users,
    create_vhost,
    delete_service_users,
    delete_vhost,
    wait_for,
)

from .conftest import ROOT, process_env

pytestmark = pytest.mark.integration

SETUP_COMMANDS = {
    "orders": ["services.orders.worker", "setup"],
    "notifications": ["services.notifications.worker", "setup"],
    "gateway": ["gateway.worker", "setup"],
}
# One short retry tier, the same in `setup` and in the consumer below (queue arguments are
# fixed at declaration).
RETRY_DELAY = 0.05


class Base(DeclarativeBase):
    metadata = sa.MetaData()


class Outbox(OutboxMixin, Base):
    pass


class Broker:
    """A vhost of this module with the services' users in it, and guest to arrange things."""

    def __init__(self, admin_url: str, urls: dict[str, str]) -> None:
        self.admin_url = admin_url
        self.urls = urls

    def channel(self, service: str | None = None) -> Any:
        """A confirming channel as `service`'s user (guest when None); closed with the test."""
        url = self.urls[service] if service else self.admin_url
        connection = pika.BlockingConnection(pika.URLParameters(url))
        self._opened.append(connection)
        channel = connection.channel()
        channel.confirm_delivery()
        return channel

    def depth(self, queue: str) -> int:
        """Ready messages in `queue`."""
        channel = self.channel()
        return int(channel.queue_declare(queue=queue, passive=True).method.message_count)

    def __enter__(self) -> Broker:
        self._opened: list[Any] = []
        return self

    def __exit__(self, *exc: object) -> None:
        for connection in self._opened:
            if connection.is_open:
                connection.close()


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[str, dict[str, str]]]:
    """(guest's URL, each service's URL) on a vhost of this module alone."""
    vhost, admin_url = create_vhost("ops-users")
    try:
        urls = create_service_users(vhost)
        try:
            yield admin_url, urls
        finally:
            delete_service_users(vhost)
    finally:
        delete_vhost(vhost)


@pytest.fixture
def broker(users: tuple[str, dict[str, str]]) -> Iterator[Broker]:
    with Broker(*users) as broker:
        yield broker


@pytest.fixture(scope="module", autouse=True)
def queues_declared_by_each_service(users: tuple[str, dict[str, str]], tmp_path_factory) -> None:
    """The consuming services' `setup` commands, each run as its own user, as containers do."""
    _, urls = users
    var = tmp_path_factory.mktemp("var")
    for service, command in SETUP_COMMANDS.items():
        env = process_env(
            APP_ENV="test",
            AMQP_URL=urls[service],
            VAR_DIR=str(var),
            REDIS_URL="redis://127.0.0.1:6379/0",
            PYTHONPATH=str(ROOT),
            EVENT_RETRY_DELAYS=str(RETRY_DELAY),
        )
        result = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{service}: {result.stdout}{result.stderr}"


def published(url: str, event_type: str) -> bool:
    """Publish one event through the relay's Publisher; True when routed and confirmed."""
    with Publisher(url) as publisher:
        return publisher.publish(new_event(event_type, "/test", {}))


def test_orders_publishes_order_events_and_the_broker_refuses_it_user_deactivated(
    broker: Broker,
) -> None:
    before = broker.depth(queue_name("gateway"))
    channel = broker.channel("orders")

    channel.basic_publish(EXCHANGE, "order.created", b"{}", mandatory=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        channel.basic_publish(EXCHANGE, "user.deactivated", b"{}", mandatory=True)

    assert refused.value.reply_code == 403
    assert "ACCESS_REFUSED" in refused.value.reply_text
    assert broker.depth(queue_name("gateway")) == before  # no forged revocation arrived


def test_each_producer_publishes_its_own_events_and_only_those(broker: Broker) -> None:
    notifications_before = broker.depth(queue_name("notifications"))

    assert published(broker.urls["auth"], "user.registered")
    assert published(broker.urls["orders"], "order.created")
    assert not published(broker.urls["auth"], "order.created")
    assert not published(broker.urls["notifications"], "order.created")
    assert not published(broker.urls["gateway"], "user.deactivated")

    assert broker.depth(queue_name("notifications")) == notifications_before + 2


@pytest.mark.parametrize(
    ("service", "what"),
    [
        ("gateway", lambda ch: ch.basic_get(queue_name("orders"))),
        ("orders", lambda ch: ch.basic_get(dlq_name("notifications"))),
        ("auth", lambda ch: ch.basic_get(queue_name("orders"))),
        ("gateway", lambda ch: ch.queue_bind(queue_name("gateway"), EXCHANGE, "order.created")),
        ("gateway", lambda ch: ch.queue_bind(queue_name("gateway"), EXCHANGE, "user.registered")),
        ("orders", lambda ch: ch.queue_bind(queue_name("orders"), EXCHANGE, "#")),
        ("orders", lambda ch: ch.queue_delete(queue_name("notifications"))),
        ("notifications", lambda ch: ch.queue_declare("notifications-extra", durable=True)),
    ],
    ids=[
        "gateway reads orders' queue",
        "orders reads notifications' DLQ",
        "auth reads a queue",
        "gateway binds to order events",
        "gateway binds to events carrying emails",
        "orders binds to every event",
        "orders deletes notifications' queue",
        "notifications declares another queue",
    ],
)
def test_the_broker_refuses_what_a_service_has_no_business_doing(
    broker: Broker, service: str, what: Callable[[Any], object]
) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        what(broker.channel(service))

    assert refused.value.reply_code == 403


def test_a_consumer_retries_and_dead_letters_with_its_own_user(broker: Broker) -> None:
    handled: list[str] = []
    failed_once: set[str] = set()

    def handler(event: Any) -> None:
        if event.type == "user.deactivated":
            raise ValueError("this one never works")
        if event.id not in failed_once:
            failed_once.add(event.id)
            raise ValueError("fails the first time")
        handled.append(event.id)

    consumer = Consumer(
        broker.urls["orders"],
        "orders",
        ["user.registered", "user.deactivated", "user.reactivated"],
        handler,
        retry_delays=(RETRY_DELAY,),
    )
    dlq_before = broker.depth(dlq_name("orders"))
    good = new_event("user.registered", "/auth", {})
    bad = new_event("user.deactivated", "/auth", {})
    with Publisher(broker.urls["auth"]) as publisher:
        assert publisher.publish_batch([good, bad]) == [True, True]

    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: good.id in handled, timeout=60, what="the retried event handled")
        wait_for(
            lambda: broker.depth(dlq_name("orders")) == dlq_before + 1,
            timeout=120,
            what="the failing event in orders' DLQ",
        )
    finally:
        consumer.stop()
        thread.join(timeout=30)


def test_the_relay_keeps_a_refused_event_unsent_and_says_why(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    refused = new_event("user.deactivated", "/orders", {})
    allowed = new_event("order.created", "/orders", {})
    caplog.set_level(logging.WARNING, logger="shared.outbox")

    with Publisher(broker.urls["orders"]) as publisher:
        with sessions() as session:
            record_event(session, refused, model=Outbox)
            session.commit()
        with sessions() as session:
            assert relay_outbox_once(session, Outbox, publisher) == 0
        # The refused row waits out its backoff; what orders may publish goes on.
        with sessions() as session:
            record_event(session, allowed, model=Outbox)
            session.commit()
        with sessions() as session:
            assert relay_outbox_once(session, Outbox, publisher) == 1

    with sessions() as session:
        rows = {row.event_id: row for row in session.scalars(sa.select(Outbox))}
    assert rows[allowed.id].sent_at is not None
    assert rows[refused.id].sent_at is None
    assert rows[refused.id].attempts == 1
    assert "ACCESS_REFUSED" in (rows[refused.id].last_error or "")
    assert any(
        "not published" in record.getMessage() and "ACCESS_REFUSED" in str(record.error)
        for record in caplog.records
    )
    engine.dispose()


def order_created() -> Event:
    """A valid order.created, as the orders service builds it."""
    return contracts.build(
        contracts.OrderCreatedV1(
            order_id=str(uuid.uuid4()),
            user_id="u-1",
            status="pending",
            total_cents=2500,
            currency="EUR",
            items=[contracts.OrderItemV1(sku="BOOK-1", quantity=2, unit_price_cents=1250)],
            version=1,
        )
    )


def dead_letters(broker: Broker, consumer: str) -> dict[str, dict[str, Any]]:
    """The headers of every message in the consumer's DLQ by event id (left in place)."""
    found: dict[str, dict[str, Any]] = {}
    with pika.BlockingConnection(pika.URLParameters(broker.urls[consumer])) as connection:
        channel = connection.channel()
        while True:
            method, properties, _body = channel.basic_get(dlq_name(consumer), auto_ack=False)
            if method is None:
                break
            found[properties.message_id] = dict(properties.headers or {})
        channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
    return found


@pytest.fixture
def notifications_consumer(broker: Broker) -> Iterator[tuple[list[str], dict[str, int]]]:
    """The notifications consumer as its worker builds it (consumer_from_config, as its own
    user), running; yields (ids applied, in order; failures left to raise, by id)."""
    applied: list[str] = []
    failing: dict[str, int] = {}

    def handler(event: Event) -> None:
        if failing.get(event.id, 0) > 0:
            failing[event.id] -= 1
            raise ValueError("failing on purpose")
        applied.append(event.id)

    config = {
        "AMQP_URL": broker.urls["notifications"],
        "EVENT_DELIVERY_LIMIT": 5,
        "EVENT_RETRY_DELAYS": [RETRY_DELAY],
    }
    consumer = consumer_from_config(config, "notifications", ["order.created"], handler)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        yield applied, failing
    finally:
        consumer.stop()
        thread.join(timeout=30)


def test_a_forged_order_created_is_dead_lettered_and_a_retried_one_applied_once(
    broker: Broker, notifications_consumer: tuple[list[str], dict[str, int]]
) -> None:
    applied, failing = notifications_consumer
    notifications = broker_user(broker.urls["notifications"])
    gateway = broker_user(broker.urls["gateway"])
    forged = [
        (order_created(), "notifications", notifications, {}),
        (order_created(), "notifications", None, {}),
        # A header claiming the copy of an orders event: believed from notifications' own
        # user only, so not from the gateway's.
        (
            order_created(),
            "gateway",
            gateway,
            {PRODUCER_HEADER: broker_user(broker.urls["orders"])},
        ),
    ]
    for event, sender, user_id, headers in forged:
        properties = event_properties(event, user_id=user_id)
        properties.headers.update(headers)
        # The default exchange, straight into the queue: no topic permission applies there.
        broker.channel(sender).basic_publish(
            "", queue_name("notifications"), event.to_json(), properties
        )
    retried = order_created()
    failing[retried.id] = 1
    with Publisher(broker.urls["orders"]) as publisher:
        assert publisher.publish(retried)

    wait_for(lambda: retried.id in applied, timeout=60, what="the retried event applied")
    ids = [event.id for event, _, _, _ in forged]
    wait_for(
        lambda: set(ids) <= set(dead_letters(broker, "notifications")),
        timeout=60,
        interval=0.5,
        what="the forged events in the DLQ",
    )
    parked = dead_letters(broker, "notifications")
    # The consumer is the module's: earlier tests' events may still be arriving.
    assert applied.count(retried.id) == 1
    assert not set(ids) & set(applied)
    assert {parked[i]["x-dlq-reason"] for i in ids} == {"unverified-producer"}
    # Each DLQ copy names who really sent it, not what a header claimed.
    assert [parked[i][PRODUCER_HEADER] for i in ids] == [notifications, "", gateway]


def test_a_dlq_replay_applies_the_real_event_and_refuses_the_forged_one_again(
    broker: Broker, notifications_consumer: tuple[list[str], dict[str, int]]
) -> None:
    applied, failing = notifications_consumer
    real, forged = order_created(), order_created()
    failing[real.id] = 10  # past its retry: dead-lettered as handler-failed
    with Publisher(broker.urls["orders"]) as publisher:
        assert publisher.publish(real)
    broker.channel("gateway").basic_publish(
        "",
        queue_name("notifications"),
        forged.to_json(),
        event_properties(forged, user_id=broker_user(broker.urls["gateway"])),
    )
    wait_for(
        lambda: {real.id, forged.id} <= set(dead_letters(broker, "notifications")),
        timeout=60,
        interval=0.5,
        what="both events in the DLQ",
    )
    failing[real.id] = 0

    # As the operator runs it: in the consumer's container, as the consumer's own user.
    url = broker.urls["notifications"]
    replay = ["--amqp-url", url, "replay", "notifications", "--id", real.id, "--id", forged.id]
    assert dlq.main(replay) == 0

    wait_for(lambda: real.id in applied, timeout=60, what="the replayed event applied")
    wait_for(
        lambda: forged.id in dead_letters(broker, "notifications"),
        timeout=60,
        interval=0.5,
        what="the forged event back in the DLQ",
    )
    assert applied.count(real.id) == 1
    assert forged.id not in applied
    assert real.id not in dead_letters(broker, "notifications")
