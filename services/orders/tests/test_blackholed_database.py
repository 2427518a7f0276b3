"""A database that stops answering (frozen, not down) costs a request seconds and a 503.

The server here is the test's own, frozen with SIGSTOP: its port stays open and its kernel
keeps acknowledging, which is what a paused VM or a dead network path looks like to us.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask

from services.orders import MIGRATIONS_DIR, create_app
from services.orders.models import db
from shared.db import config_engine_options, guard_engine
from tests.support.nodes import PostgresNode

# psycopg never waits less than 2 s for a connection, whatever connect_timeout says.
TIMEOUTS = {"DATABASE_CONNECT_TIMEOUT_SECONDS": 2.0, "DATABASE_STATEMENT_TIMEOUT_SECONDS": 1.0}


@pytest.fixture
def frozen_app(own_postgres: PostgresNode) -> Iterator[Flask]:
    """The orders app on the test's own PostgreSQL, migrated, with short timeouts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APP_ENV", "test")
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": own_postgres.url, **TIMEOUTS})
    with app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS_DIR)
    yield app
    own_postgres.thaw()  # whatever happened, never leave the server stopped
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.mark.chaos
@pytest.mark.integration
def test_a_request_to_a_frozen_database_answers_503_quickly_and_recovers(
    frozen_app: Flask, own_postgres: PostgresNode
):
    client = frozen_app.test_client()
    assert client.get("/api/v1/products").status_code == 200  # a pooled connection exists

    own_postgres.freeze()
    try:
        for _ in range(2):  # the pooled connection, then a fresh one
            started = time.monotonic()
            response = client.get("/api/v1/products")
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.mimetype == "application/problem+json"
            assert response.headers["Retry-After"]
            # A ping bounded by the connect timeout, then one connect attempt: 2 s + 2 s.
            assert elapsed < 6, f"the frozen database held the request {elapsed:.1f} s"
    finally:
        own_postgres.thaw()

    assert client.get("/api/v1/products").status_code == 200


@pytest.mark.chaos
@pytest.mark.integration
def test_a_statement_in_flight_when_the_database_freezes_fails_within_its_deadline(
    own_postgres: PostgresNode,
):
    url = own_postgres.url
    engine = sa.create_engine(url, **config_engine_options(url, TIMEOUTS))
    guard_engine(engine, ping=False, connect_timeout=2.0, statement_timeout=1.0)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            own_postgres.freeze()
            try:
                started = time.monotonic()
                with pytest.raises(sa.exc.OperationalError) as raised:
                    connection.execute(sa.text("SELECT 1"))
                elapsed = time.monotonic() - started
            finally:
                own_postgres.thaw()
        # The statement limit (1 s) plus the grace the server had to enforce it itself.
        assert 0.9 < elapsed < 5, f"{elapsed:.1f} s"
        assert raised.value.connection_invalidated
        with engine.connect() as connection:  # the pool moved on to a working connection
            assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.integration
def test_the_server_enforces_the_statement_timeout_itself(own_postgres: PostgresNode):
    url = own_postgres.url
    engine = sa.create_engine(url, **config_engine_options(url, TIMEOUTS))
    try:
        with engine.connect() as connection, pytest.raises(sa.exc.OperationalError) as raised:
            connection.execute(sa.text("SELECT pg_sleep(5)"))
        assert "statement timeout" in str(raised.value)
    finally:
        engine.dispose()


@pytest.mark.integration
def test_a_statement_that_fails_leaves_no_deadline_behind_to_cut_a_healthy_connection(
    own_postgres: PostgresNode,
):
    url = own_postgres.url
    engine = sa.create_engine(url, **config_engine_options(url, TIMEOUTS))
    guard_engine(engine, ping=False, connect_timeout=2.0, statement_timeout=1.0)
    try:
        with engine.connect() as connection:
            with pytest.raises(sa.exc.ProgrammingError):
                connection.execute(sa.text("SELECT no_such_column FROM no_such_table"))
            connection.rollback()
            time.sleep(3.5)  # past the failed statement's deadline (1 s + 2 s of grace)
            assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
