"""Fixtures for the messaging tests: a tiny model set, fresh tables per test, broker helpers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pika
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from shared.inbox import InboxMixin
from shared.messaging import Consumer
from shared.outbox import OutboxMixin


class Base(DeclarativeBase):
    """Its own metadata: these tables belong to the tests, not to any service."""

    metadata = sa.MetaData()


class Outbox(OutboxMixin, Base):
    pass


class Inbox(InboxMixin, Base):
    pass


class Applied(Base):
    """One row per time a handler's effect was applied (what exactly-once must keep at 1)."""

    __tablename__ = "applied"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(36))


def unique_type(prefix: str = "test") -> str:
    """An event type (= routing key) no other test binds."""
    return f"{prefix}.t{uuid.uuid4().hex[:10]}"


def queue_depth(channel, queue: str) -> int:
    """Ready messages in a queue."""
    return channel.queue_declare(queue=queue, passive=True).method.message_count


def drain(channel, queue: str) -> list[tuple[object, bytes]]:
    """Get (and ack) every ready message of a queue: [(properties, body)]."""
    messages = []
    while True:
        method, properties, body = channel.basic_get(queue=queue, auto_ack=True)
        if method is None:
            return messages
        messages.append((properties, body))


@contextmanager
def running(consumer: Consumer) -> Iterator[Consumer]:
    """Run a Consumer in a thread (its own connection) for the duration of a block."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            consumer.run()
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"consumer-{consumer.consumer}", daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        consumer.stop()
        thread.join(timeout=15)
        assert not thread.is_alive(), "consumer did not stop"
        if errors:
            raise errors[0]


@pytest.fixture
def consumer_name() -> str:
    """A consumer (queue prefix) name of this test alone."""
    return f"c{uuid.uuid4().hex[:10]}"


@pytest.fixture
def channel(amqp_url):
    """A blocking channel on the session's vhost, for arranging and inspecting queues.

    In confirm mode, so a message published through it is in its queue when the call returns.
    """
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        connection.close()


@pytest.fixture(scope="session")
def pg_url(database_factory) -> str:
    """One PostgreSQL database for this session; each test recreates the tables."""
    return database_factory("shared")


def _fresh_engine(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def pg_engine(pg_url) -> Iterator[sa.Engine]:
    """An engine on PostgreSQL with freshly created test tables."""
    yield from _fresh_engine(pg_url)


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[sa.Engine]:
    """An engine on a fresh SQLite file."""
    yield from _fresh_engine(f"sqlite:///{tmp_path / 'test.db'}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request) -> sa.Engine:
    """Each test using it runs on SQLite and on PostgreSQL."""
    fixture = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(fixture)


@pytest.fixture
def session_factory(engine) -> sessionmaker:
    """Plain SQLAlchemy sessions on the parametrized engine."""
    return sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def pg_sessions(pg_engine) -> sessionmaker:
    """Plain SQLAlchemy sessions on PostgreSQL."""
    return sessionmaker(pg_engine, expire_on_commit=False)
