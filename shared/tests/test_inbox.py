"""The inbox turns at-least-once delivery into exactly-once effect, on SQLite and PostgreSQL."""

import threading

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from shared import contracts
from shared.events import InvalidEvent, new_event
from shared.inbox import handle_once, inbox_handler
from shared.tests.conftest import Applied, Base, Inbox


def count(session, model):
    return session.scalar(sa.select(sa.func.count()).select_from(model))


def apply_once(sessions, event, consumer="orders"):
    """What a consumer does per delivery: inbox row + effect, one transaction."""
    with sessions() as session:
        applied = handle_once(
            session, Inbox, consumer, event, lambda: session.add(Applied(event_id=event.id))
        )
        session.commit()
        return applied


def test_the_same_event_handled_twice_applies_once(session_factory):
    event = new_event("user.registered", "/auth", {"user_id": 1})
    assert apply_once(session_factory, event) is True
    assert apply_once(session_factory, event) is False
    with session_factory() as session:
        assert count(session, Applied) == 1
        row = session.scalars(sa.select(Inbox)).one()
    assert (row.consumer, row.event_id, row.type) == ("orders", event.id, "user.registered")


def test_each_consumer_applies_the_same_event_once(session_factory):
    event = new_event("user.registered", "/auth", {"user_id": 1})
    assert apply_once(session_factory, event, consumer="orders")
    assert apply_once(session_factory, event, consumer="notifications")
    assert not apply_once(session_factory, event, consumer="notifications")
    with session_factory() as session:
        assert count(session, Applied) == 2


def test_a_failed_attempt_leaves_no_inbox_row_so_the_retry_applies(session_factory):
    event = new_event("user.registered", "/auth", {})

    def explode():
        raise RuntimeError("database said no")

    with session_factory() as session:
        with pytest.raises(RuntimeError):
            handle_once(session, Inbox, "orders", event, explode)
        session.rollback()  # what inbox_handler does before the consumer retries
    assert apply_once(session_factory, event) is True


@pytest.mark.integration
def test_concurrent_duplicates_on_postgresql_apply_once(pg_sessions):
    # The second transaction's insert waits on the first's uncommitted row, then finds it.
    event = new_event("user.registered", "/auth", {})
    first = pg_sessions()
    assert handle_once(first, Inbox, "orders", event, lambda: first.add(Applied(event_id=event.id)))
    results = []
    worker = threading.Thread(target=lambda: results.append(apply_once(pg_sessions, event)))
    worker.start()
    worker.join(timeout=0.5)
    assert worker.is_alive(), "the duplicate should wait for the first transaction"
    first.commit()
    first.close()
    worker.join(timeout=10)
    assert results == [False]
    with pg_sessions() as session:
        assert count(session, Applied) == 1


@pytest.fixture
def flask_app(tmp_path):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'inbox.db'}"
    db = SQLAlchemy()
    db.init_app(app)
    with app.app_context():
        Base.metadata.create_all(db.engine)
    yield app, db
    with app.app_context():
        db.engine.dispose()


def test_inbox_handler_commits_once_acks_unhandled_types_and_refuses_unknown_ones(flask_app):
    app, db = flask_app
    calls = []

    def on_registered(session, event, data):
        calls.append((event.id, data.email))
        session.add(Applied(event_id=event.id))

    handle = inbox_handler(app, db, Inbox, "orders", {"user.registered": on_registered})
    event = registered()
    handle(event)
    handle(event)
    # A catalogue type without a handler here: returns, the event is acked.
    handle(contracts.build(contracts.UserReactivatedV1(user_id="u-1", version=2)))
    # A consumer the catalogue does not declare for this type (or version): acked unread.
    inbox_handler(app, db, Inbox, "gateway", {"user.registered": on_registered})(registered())
    with pytest.raises(InvalidEvent, match="unknown event type 'user.unknown_thing'"):
        handle(new_event("user.unknown_thing", "/auth", {}))  # the consumer dead-letters it

    assert calls == [(event.id, "ada@example.com")]
    with app.app_context():
        assert count(db.session, Applied) == 1
        assert count(db.session, Inbox) == 1


def test_inbox_handler_rolls_back_and_reraises_so_the_consumer_retries(flask_app):
    app, db = flask_app

    def half_done(session, event, data):
        session.add(Applied(event_id=event.id))
        session.flush()
        raise RuntimeError("downstream failed")

    handle = inbox_handler(app, db, Inbox, "orders", {"user.registered": half_done})
    event = registered()
    with pytest.raises(RuntimeError, match="downstream failed"):
        handle(event)
    with app.app_context():
        assert count(db.session, Applied) == 0
        assert count(db.session, Inbox) == 0


def test_inbox_handler_refuses_data_its_contract_does_not_allow_before_touching_the_database(
    flask_app,
):
    app, db = flask_app
    calls = []
    handle = inbox_handler(
        app, db, Inbox, "orders", {"user.registered": lambda *args: calls.append(args)}
    )
    wire = registered().to_dict()
    renamed = new_event(
        "user.registered",
        "/auth",
        {**{k: v for k, v in wire["data"].items() if k != "email"}, "mail": "ada@example.com"},
        dataschema=wire["dataschema"],
    )
    with pytest.raises(InvalidEvent, match="email: Field required; mail: Unexpected"):
        handle(renamed)

    assert calls == []
    with app.app_context():
        assert count(db.session, Inbox) == 0


def registered():
    """A valid user.registered, as auth builds it."""
    return contracts.build(
        contracts.UserRegisteredV1(user_id="u-1", email="ada@example.com", name="Ada", version=1)
    )
