"""Events leave auth through the outbox and reach the real RabbitMQ (integration)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pika
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from services.auth.models import Outbox, db
from services.auth.tests.conftest import verification_events
from shared.events import parse_event
from shared.messaging import EXCHANGE, Publisher, declare_exchange
from shared.outbox import relay_outbox_once, run_relay
from tests.support import wait_for

pytestmark = pytest.mark.integration


@contextmanager
def channel(url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def bind_queue(ch, name: str, routing_key: str = "user.registered", **kwargs) -> str:
    declare_exchange(ch)
    ch.queue_declare(queue=name, **kwargs)
    ch.queue_bind(queue=name, exchange=EXCHANGE, routing_key=routing_key)
    return name


def drain(ch, queue: str) -> list[bytes]:
    bodies = []
    while True:
        method, _properties, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def test_register_publishes_exactly_one_user_registered_event(auth, pg_app, amqp_url):
    with channel(amqp_url) as ch:
        queue = bind_queue(ch, f"auth-test-{uuid.uuid4().hex[:8]}", exclusive=True)
        # Published with `mandatory`: the link's event needs a queue too (notifications').
        link_queue = bind_queue(
            ch, f"auth-link-{uuid.uuid4().hex[:8]}", "user.verification_requested", exclusive=True
        )
        response = auth.register("ada@example.com")
        assert response.status_code == 202
        user = auth.me(auth.tokens()["access_token"]).get_json()

        with pg_app.app_context(), Publisher(amqp_url) as publisher:
            # user.registered and user.verification_requested (the link, for the mail)
            assert relay_outbox_once(db.session(), Outbox, publisher) == 2
            assert relay_outbox_once(db.session(), Outbox, publisher) == 0  # nothing twice
            sent = db.session.scalars(sa.select(Outbox.sent_at)).all()
            assert len(sent) == 2 and None not in sent

        time.sleep(0.2)  # anything else routed would have arrived by now
        (body,) = drain(ch, queue)
        (link,) = drain(ch, link_queue)
    assert parse_event(link).data["email"] == "ada@example.com"
    event = parse_event(body)
    assert event.type == "user.registered"
    assert event.source == "/auth"
    assert event.subject == user["id"]
    assert event.data == {
        "user_id": user["id"],
        "email": "ada@example.com",
        "name": "Ada",
        "version": 1,
    }
    assert event.dataschema == "urn:flask-microservices-suite:events:user.registered:1"
    assert event.requestid == response.headers["X-Request-ID"]


def test_register_during_a_broker_outage_answers_202_and_publishes_after_it(
    auth, pg_app, second_rabbit, caplog
):
    url = second_rabbit.url
    queue = f"auth-outage-{uuid.uuid4().hex[:8]}"
    with channel(url) as ch:
        bind_queue(ch, queue, durable=True)  # durable: it outlives the outage
        ch.queue_bind(queue=queue, exchange=EXCHANGE, routing_key="user.verification_requested")
    with pg_app.app_context():
        engine = db.engine
    stop = threading.Event()
    relay = threading.Thread(
        target=run_relay,
        args=(sessionmaker(bind=engine), Outbox, url),
        kwargs={"idle_seconds": 0.05, "stop_event": stop, "max_backoff": 0.5},
        daemon=True,
    )
    relay.start()

    def unsent() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).where(Outbox.sent_at.is_(None))) or 0)

    def relay_failures() -> int:
        return sum(r.getMessage() == "outbox relay failed; backing off" for r in caplog.records)

    caplog.set_level(logging.WARNING, logger="shared.outbox")
    try:
        second_rabbit.stop_app()
        try:
            response = auth.register("outage@example.com")
            assert response.status_code == 202
            # The relay ran with the rows there: it tried twice more against the stopped
            # broker, and both rows are still waiting.
            tried = relay_failures()
            wait_for(
                lambda: relay_failures() >= tried + 2,
                timeout=30,
                what="the relay retrying against the stopped broker",
            )
            assert unsent() == 2
        finally:
            second_rabbit.start_app()
        wait_for(lambda: unsent() == 0, timeout=30)
    finally:
        stop.set()
        relay.join(timeout=15)
    assert not relay.is_alive()

    with channel(url) as ch:
        bodies = drain(ch, queue)
        ch.queue_delete(queue)
    event, link = (parse_event(body) for body in bodies)
    assert link.type == "user.verification_requested"
    assert event.type == "user.registered"
    assert event.data["email"] == "outage@example.com"
    assert event.data["user_id"] == verification_events(pg_app)[0]["user_id"]
