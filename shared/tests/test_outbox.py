"""The outbox relay: confirmed publishing, backoff, crash safety and broker outages."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pika
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.db import as_utc, utcnow
from shared.events import new_event
from shared.inbox import handle_once
from shared.messaging import (
    EXCHANGE,
    Consumer,
    Publisher,
    PublishResult,
    declare_exchange,
    queue_name,
)
from shared.outbox import (
    IdlePause,
    purge_sent,
    record_event,
    relay_outbox_once,
    run_relay,
    update_backlog_metrics,
)
from shared.tests.conftest import (
    Applied,
    Inbox,
    Outbox,
    drain,
    queue_depth,
    running,
    unique_type,
)
from tests.support import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


class FakePublisher:
    """Confirms everything except the event ids it is told to fail."""

    def __init__(self, fail=()):
        self.fail = set(fail)
        self.batches = []

    def publish_batch(self, events):
        self.batches.append([e.id for e in events])
        return PublishResult(
            [e.id not in self.fail for e in events],
            {e.id: "nacked by the broker" for e in events if e.id in self.fail},
        )


def record(sessions, event_type, n):
    events = [new_event(event_type, "/orders", {"n": i}) for i in range(n)]
    with sessions() as session:
        for event in events:
            record_event(session, event, model=Outbox)
        session.commit()
    return events


def unsent(sessions):
    with sessions() as session:
        return session.scalar(
            sa.select(sa.func.count()).select_from(Outbox).where(Outbox.sent_at.is_(None))
        )


def bound_queue(channel, name, routing_key):
    declare_exchange(channel)
    channel.queue_declare(queue=name, durable=True)
    channel.queue_bind(queue=name, exchange=EXCHANGE, routing_key=routing_key)


class RecordingRelayPublisher(FakePublisher):
    """A fake publisher that, instead of idling, records each pause and acts on the clock.

    `on_wait[n]` runs during the n-th pause (counted from 1); the relay stops after `stop_at`.
    """

    def __init__(self, stop, on_wait, stop_at):
        super().__init__()
        self.stop, self.on_wait, self.stop_at = stop, on_wait, stop_at
        self.pauses = []

    def wait(self, seconds):
        self.pauses.append(seconds)
        self.on_wait.get(len(self.pauses), lambda: None)()
        if len(self.pauses) >= self.stop_at:
            self.stop.set()

    def close(self):
        pass


def test_idle_pause_grows_while_polls_find_nothing_and_vanishes_once_one_publishes():
    pause = IdlePause(shortest=0.005, longest=0.05)
    found = [0, 0, 0, 0, 0, 0, 3, 0, 0, 500, 500, 0]
    assert [pause.after(sent) for sent in found] == [
        0.005, 0.01, 0.02, 0.04, 0.05, 0.05,  # idle: doubling up to the ceiling
        0.0, 0.005, 0.01,  # an event came: at once, then short again
        0.0, 0.0, 0.005,  # a busy spell: no pause between batches
    ]  # fmt: skip


def test_idle_pause_never_starts_above_its_ceiling():
    pause = IdlePause(shortest=0.2, longest=0.05)
    assert [pause.after(0) for _ in range(3)] == [0.05, 0.05, 0.05]


def test_the_relay_polls_sooner_after_events_and_less_often_while_idle(session_factory):
    stop = threading.Event()
    recorded = []
    publisher = RecordingRelayPublisher(
        stop,
        # Events committed while the relay idles at its ceiling (fourth and fifth pauses).
        on_wait={5: lambda: recorded.extend(record(session_factory, "order.created", 5))},
        stop_at=9,
    )
    run_relay(
        session_factory,
        Outbox,
        "amqp://unused",
        batch_size=2,
        idle_seconds=0.03,
        min_idle_seconds=0.005,
        stop_event=stop,
        publisher=publisher,
    )
    assert publisher.pauses == [
        0.005, 0.01, 0.02, 0.03, 0.03,  # idle: the pause grows to the ceiling
        # five events: three batches back to back (two full), no pause between them
        0.005, 0.01, 0.02, 0.03,  # idle again, from the shortest pause
    ]  # fmt: skip
    assert publisher.batches == [[e.id for e in recorded[i : i + 2]] for i in (0, 2, 4)]
    assert unsent(session_factory) == 0


def test_record_event_stores_the_published_object_and_refuses_data_that_is_not_json(
    session_factory,
):
    event = new_event("order.created", "/orders", {"order_id": "o-1", "total_cents": 5})
    with session_factory() as session:
        record_event(session, event, model=Outbox)
        session.commit()
    with session_factory() as session:
        assert session.scalars(sa.select(Outbox.payload)).one() == json.loads(event.to_json())

    dated = new_event("order.created", "/orders", {"at": utcnow()})
    # psycopg refuses it itself (TypeError); on SQLite the column's serialiser does.
    with session_factory() as session, pytest.raises((TypeError, sa.exc.StatementError)):
        record_event(session, dated, model=Outbox)


def test_record_event_joins_the_callers_transaction_and_never_commits(session_factory):
    event = new_event("order.created", "/orders", {"order_id": 1})
    with session_factory() as session:
        record_event(session, event, model=Outbox)
        session.rollback()  # the use case failed: its event must vanish with it
        record_event(session, event, model=Outbox)
        session.commit()
    with session_factory() as session:
        row = session.scalars(sa.select(Outbox)).one()
    assert (row.event_id, row.type, row.attempts, row.sent_at) == (
        event.id,
        "order.created",
        0,
        None,
    )
    assert row.payload == json.loads(event.to_json())


def test_relay_marks_confirmed_rows_sent_and_backs_off_the_others(session_factory):
    events = record(session_factory, "order.created", 4)
    publisher = FakePublisher(fail={events[1].id})
    with session_factory() as session:
        assert relay_outbox_once(session, Outbox, publisher) == 3
    assert publisher.batches == [[e.id for e in events]]  # one batch, in id order

    with session_factory() as session:
        failed = session.scalars(sa.select(Outbox).where(Outbox.sent_at.is_(None))).one()
    assert failed.event_id == events[1].id
    assert failed.attempts == 1
    assert failed.last_error == "nacked by the broker"
    assert as_utc(failed.available_at) > utcnow()

    # Not due yet: the next pass leaves it alone.
    with session_factory() as session:
        assert relay_outbox_once(session, Outbox, FakePublisher()) == 0


def test_relay_takes_at_most_batch_size_rows_per_pass(session_factory):
    record(session_factory, "order.created", 5)
    publisher = FakePublisher()
    with session_factory() as session:
        assert relay_outbox_once(session, Outbox, publisher, batch_size=2) == 2
        assert relay_outbox_once(session, Outbox, publisher, batch_size=2) == 2
        assert relay_outbox_once(session, Outbox, publisher, batch_size=2) == 1
        assert relay_outbox_once(session, Outbox, publisher, batch_size=2) == 0
    assert [len(b) for b in publisher.batches] == [2, 2, 1]


def test_a_corrupt_stored_event_is_parked_without_blocking_the_rest(session_factory):
    good = record(session_factory, "order.created", 2)
    with session_factory() as session:
        session.add(Outbox(event_id="bad", type="order.created", payload={"nonsense": 1}))
        session.commit()
    publisher = FakePublisher()
    with session_factory() as session:
        assert relay_outbox_once(session, Outbox, publisher) == 2
        bad = session.scalars(sa.select(Outbox).where(Outbox.event_id == "bad")).one()
    assert publisher.batches == [[e.id for e in good]]
    assert bad.sent_at is None and "invalid stored event" in bad.last_error


@pytest.mark.integration
def test_two_relays_never_claim_the_same_rows(pg_sessions):
    events = record(pg_sessions, "order.created", 6)
    other_relay = pg_sessions()
    try:
        claimed = other_relay.scalars(
            sa.select(Outbox.event_id)
            .where(Outbox.sent_at.is_(None))
            .order_by(Outbox.id)
            .limit(4)
            .with_for_update(skip_locked=True)
        ).all()
        publisher = FakePublisher()
        with pg_sessions() as session:
            assert relay_outbox_once(session, Outbox, publisher) == 2
    finally:
        other_relay.rollback()
        other_relay.close()
    assert claimed == [e.id for e in events[:4]]
    assert publisher.batches == [[e.id for e in events[4:]]]


def test_backlog_metrics_and_purge_of_sent_rows(session_factory):
    record(session_factory, "order.created", 3)
    with session_factory() as session:
        assert update_backlog_metrics(session, Outbox) == 3
        relay_outbox_once(session, Outbox, FakePublisher())
        assert update_backlog_metrics(session, Outbox) == 0
        assert purge_sent(session, Outbox, timedelta(hours=1)) == 0
        assert purge_sent(session, Outbox, timedelta(seconds=-1)) == 3
        session.commit()


def test_the_backlog_gauges_show_the_unsent_events_and_the_age_of_the_oldest(session_factory):
    from prometheus_client import REGISTRY

    def gauges():
        return (
            REGISTRY.get_sample_value("outbox_backlog"),
            REGISTRY.get_sample_value("outbox_oldest_unsent_age_seconds"),
        )

    record(session_factory, "order.created", 2)
    with session_factory() as session:
        # The oldest was written five minutes ago (the relay was down, say).
        oldest = session.scalars(sa.select(Outbox).order_by(Outbox.id)).first()
        oldest.created_at = utcnow() - timedelta(minutes=5)
        session.commit()
        update_backlog_metrics(session, Outbox)
        backlog, age = gauges()
        assert backlog == 2
        assert 300 <= age < 360

        relay_outbox_once(session, Outbox, FakePublisher())
        update_backlog_metrics(session, Outbox)
    assert gauges() == (0, 0)


@pytest.mark.integration
def test_relay_publishes_to_the_real_broker_and_reports_unroutable_rows(
    session_factory, amqp_url, channel
):
    routed, lonely = unique_type("order"), unique_type("nobody")
    bound_queue(channel, f"q-{routed}", routed)
    sent = record(session_factory, routed, 3)
    record(session_factory, lonely, 1)
    with Publisher(amqp_url) as publisher, session_factory() as session:
        assert relay_outbox_once(session, Outbox, publisher) == 3
        stuck = session.scalars(sa.select(Outbox).where(Outbox.sent_at.is_(None))).one()
    assert "unroutable" in stuck.last_error
    assert sorted(json.loads(b)["id"] for _, b in drain(channel, f"q-{routed}")) == sorted(
        e.id for e in sent
    )


# The "kill" is real: the relay runs in a child process whose publisher SIGKILLs the process
# right after the broker confirmed the batch, before relay_outbox_once commits sent_at. An
# exception would let Python unwind and roll back politely; SIGKILL leaves the PostgreSQL
# transaction and the AMQP connection to be torn down by the servers, as a real crash does.
KILLED_RELAY = """
import os, signal, sys
import sqlalchemy as sa
from sqlalchemy.orm import Session
from shared.messaging import Publisher
from shared.outbox import relay_outbox_once
from shared.tests.conftest import Outbox

class DiesAfterConfirms(Publisher):
    def publish_batch(self, events):
        results = super().publish_batch(events)
        sys.stdout.write(f"confirmed {sum(results)}\\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

engine = sa.create_engine(os.environ["TEST_DATABASE_URL"])
with Session(engine) as session:
    relay_outbox_once(session, Outbox, DiesAfterConfirms(os.environ["TEST_AMQP_URL"]))
"""


@pytest.mark.integration
def test_a_relay_killed_between_publish_and_commit_republishes_and_the_inbox_applies_once(
    pg_url, pg_sessions, amqp_url, channel, consumer_name
):
    event_type = unique_type("order")
    [event] = record(pg_sessions, event_type, 1)
    consumer_queue_args = {"delivery_limit": 5, "retry_delays": [0.05]}
    from shared.messaging import declare_topology

    declare_topology(channel, consumer_name, [event_type], **consumer_queue_args)

    child = subprocess.run(
        [sys.executable, "-c", KILLED_RELAY],
        cwd=REPO_ROOT,
        env={**os.environ, "TEST_DATABASE_URL": pg_url, "TEST_AMQP_URL": amqp_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout == "confirmed 1\n"
    assert queue_depth(channel, queue_name(consumer_name)) == 1  # it did reach the broker
    assert unsent(pg_sessions) == 1  # but sent_at never committed

    # The next relay publishes it again (once PostgreSQL has noticed the dead backend and
    # released its row lock, which SKIP LOCKED would otherwise skip).
    with Publisher(amqp_url) as publisher, pg_sessions() as session:
        wait_for(lambda: relay_outbox_once(session, Outbox, publisher) == 1, timeout=10)
    assert queue_depth(channel, queue_name(consumer_name)) == 2

    deliveries = []

    def handler(delivered):
        deliveries.append(delivered.id)
        with pg_sessions() as session:
            handle_once(
                session,
                Inbox,
                consumer_name,
                delivered,
                lambda: session.add(Applied(event_id=delivered.id)),
            )
            session.commit()

    consumer = Consumer(amqp_url, consumer_name, [event_type], handler, retry_delays=(0.05,))
    with running(consumer):
        wait_for(lambda: len(deliveries) == 2, timeout=15)
        wait_for(lambda: queue_depth(channel, queue_name(consumer_name)) == 0, timeout=15)
    assert deliveries == [event.id, event.id]
    with pg_sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Applied)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(Inbox)) == 1


@pytest.mark.integration
def test_relay_drains_five_thousand_rows(pg_engine, amqp_url, channel):
    event_type = unique_type("bulk")
    bound_queue(channel, f"q-{event_type}", event_type)
    rows = [
        {"event_id": e.id, "type": e.type, "payload": e.to_dict()}
        for e in (new_event(event_type, "/orders", {"n": n}) for n in range(5000))
    ]
    with Session(pg_engine) as session:
        session.execute(sa.insert(Outbox), rows)
        session.commit()

    sent = 0
    with Publisher(amqp_url) as publisher, Session(pg_engine) as session:
        while batch := relay_outbox_once(session, Outbox, publisher, batch_size=500):
            sent += batch
    assert sent == 5000
    assert queue_depth(channel, f"q-{event_type}") == 5000
    channel.queue_purge(f"q-{event_type}")


@pytest.mark.integration
@pytest.mark.chaos
def test_outbox_writes_survive_a_broker_outage_and_the_relay_delivers_after_it(
    second_rabbit, pg_sessions
):
    event_type = unique_type("order")
    queue = f"q-{event_type}"
    with pika.BlockingConnection(pika.URLParameters(second_rabbit.url)) as connection:
        bound_queue(connection.channel(), queue, event_type)

    stop = threading.Event()
    relay = threading.Thread(
        target=run_relay,
        args=(pg_sessions, Outbox, second_rabbit.url),
        kwargs={"idle_seconds": 0.05, "stop_event": stop, "max_backoff": 0.5},
        daemon=True,
    )
    relay.start()
    try:
        before = record(pg_sessions, event_type, 1)
        wait_for(lambda: unsent(pg_sessions) == 0, timeout=15)  # connected and relaying

        second_rabbit.stop_app()
        try:
            during = record(pg_sessions, event_type, 5)  # the API keeps working
            time.sleep(1.0)  # the relay tries, fails and backs off meanwhile
            assert unsent(pg_sessions) == 5
        finally:
            second_rabbit.start_app()

        wait_for(lambda: unsent(pg_sessions) == 0, timeout=30)
    finally:
        stop.set()
        relay.join(timeout=15)
    assert not relay.is_alive()

    with pika.BlockingConnection(pika.URLParameters(second_rabbit.url)) as connection:
        delivered = [json.loads(b)["id"] for _, b in drain(connection.channel(), queue)]
    assert sorted(delivered) == sorted(e.id for e in before + during)
