"""The consumer and the delivery worker killed at their crash points: lost 0, duplicated 0.

Each test runs the real worker process with one crash point armed, sees it die there
(SIGKILL, no cleanup), starts it again without the fault and checks the effects: the
consumer's committed event is redelivered and its inbox row turns the second handling into
nothing; the sent email goes out again once the lease runs out, under the same Message-ID,
which is how a receiver recognises the copy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
import sqlalchemy as sa
from flask import Flask

from services.notifications.handlers import CONSUMER, HANDLERS
from services.notifications.models import Delivery, Inbox, Notification, db
from services.notifications.tests.conftest import SmtpSink, user_email_verified, user_registered
from shared.events import Event
from shared.faults import CONSUMER_AFTER_COMMIT, DELIVERY_AFTER_SEND
from shared.inbox import inbox_handler
from shared.messaging import Publisher, declare_topology, dlq_name, queue_name
from tests.support import create_vhost, delete_vhost, log_tail, spawn, stop_process, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

REPO = Path(__file__).resolve().parents[3]
RETRY_DELAYS = "0.05"
ADA = "user-ada"


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A vhost of this module's own: other tests publish the same event types."""
    vhost, url = create_vhost("notifications-crash")
    yield url
    delete_vhost(vhost)


def worker(
    app: Flask, command: str, broker_url: str, log: Path, **env: str
) -> subprocess.Popen[bytes]:
    """`python -m services.notifications.worker <command>` on the test's database and vhost."""
    environ = {k: v for k, v in os.environ.items() if k != "FAULT_POINTS"}
    environ |= {
        "APP_ENV": "test",
        "NOTIFICATIONS_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "AMQP_URL": broker_url,
        "EVENT_RETRY_DELAYS": RETRY_DELAYS,
        "VAR_DIR": app.config["VAR_DIR"],
        "PYTHONPATH": str(REPO),
        **env,
    }
    argv = [sys.executable, "-m", "services.notifications.worker", command]
    return spawn(argv, log=log, env=environ)


def killed_at_crash_point(process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for the process to kill itself at its armed crash point."""
    try:
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == -signal.SIGKILL, log_tail(log)
    assert "crash point reached" in log.read_text()


def count(app: Flask, model: type, *where: sa.ColumnElement[bool]) -> int:
    with app.app_context():
        found = db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))
        db.session.rollback()
    return int(found or 0)


def queued(broker_url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as connection:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)


def publish(broker_url: str, *events: Event) -> None:
    with pika.BlockingConnection(pika.URLParameters(broker_url)) as connection:
        declare_topology(
            connection.channel(), CONSUMER, list(HANDLERS), delivery_limit=5, retry_delays=[0.05]
        )
    with Publisher(broker_url) as publisher:
        assert publisher.publish_batch(list(events)) == [True] * len(events)


def test_a_consumer_killed_between_commit_and_ack_applies_the_event_once(
    app: Flask, broker_url: str, tmp_path: Path
):
    event = user_registered(ADA, "ada@example.com", "Ada")
    publish(broker_url, event)
    log = tmp_path / "consumer.log"

    killed_at_crash_point(
        worker(app, "consume", broker_url, log, FAULT_POINTS=CONSUMER_AFTER_COMMIT), log
    )
    # Committed and never acknowledged: the effect is there, and so is the message.
    assert count(app, Notification, Notification.event_id == event.id) == 1
    wait_for(lambda: queued(broker_url, queue_name(CONSUMER)) == 1, timeout=15)

    successor = worker(app, "consume", broker_url, log)
    try:
        wait_for(
            lambda: any(
                "duplicate event ignored" in line and event.id in line
                for line in log.read_text().splitlines()
            ),
            timeout=30,
            what="the successor receiving the event again",
        )
    finally:
        assert stop_process(successor) == 0, log_tail(log)

    assert count(app, Notification, Notification.event_id == event.id) == 1  # duplicated 0
    assert queued(broker_url, queue_name(CONSUMER)) == 0
    assert queued(broker_url, dlq_name(CONSUMER)) == 0


def test_a_delivery_worker_killed_between_send_and_record_sends_again_under_the_same_id(
    app: Flask, broker_url: str, smtp_sink: SmtpSink, tmp_path: Path
):
    consume = inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
    consume(user_registered(ADA, "ada@example.com", "Ada"))
    consume(user_email_verified(ADA))
    deliveries = count(app, Delivery, Delivery.user_id == ADA)
    assert deliveries >= 1
    log = tmp_path / "deliver.log"
    settings = {
        "SMTP_PORT": str(smtp_sink.port),
        "NOTIFICATIONS_DELIVERY_LEASE_SECONDS": "3",
        "NOTIFICATIONS_DELIVERY_POLL_SECONDS": "0.05",
        "NOTIFICATIONS_DELIVERY_THREADS": "1",
        "NOTIFICATIONS_DELIVERY_BATCH_SIZE": "1",
        "SMTP_TIMEOUT_SECONDS": "1",
        "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS": "1",
    }

    killed_at_crash_point(
        worker(app, "deliver", broker_url, log, FAULT_POINTS=DELIVERY_AFTER_SEND, **settings), log
    )
    assert len(smtp_sink.messages()) == 1  # sent...
    assert count(app, Delivery, Delivery.sent_at.is_not(None)) == 0  # ...and not recorded

    successor = worker(app, "deliver", broker_url, log, **settings)
    try:
        wait_for(
            lambda: count(app, Delivery, Delivery.sent_at.is_not(None)) == deliveries,
            timeout=30,
            what="the successor sending every delivery once its lease ran out",
        )
    finally:
        assert stop_process(successor) == 0, log_tail(log)

    ids = Counter(message["Message-ID"] for message in smtp_sink.messages())
    assert len(ids) == deliveries  # lost 0: one distinct message per delivery
    # The crashed send went out twice under one id, every other one once: duplicated 0.
    assert sorted(ids.values()) == sorted([2] + [1] * (deliveries - 1))
