"""Fixtures of the orders tests.

One PostgreSQL database per test session, built by the real migrations and emptied before
each test; tokens signed with a key made for the session and verified by the app exactly
as production verifies auth's tokens (only the key source differs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pika
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from services.orders import MIGRATIONS_DIR, create_app
from services.orders.models import Outbox, db
from services.orders.tests.helpers import (
    CATALOGUE,
    EventQueue,
    TokenFactory,
    add_products,
    order_body,
)
from shared import tokens
from shared.messaging import EXCHANGE, Publisher, declare_exchange
from shared.outbox import relay_outbox_once
from tests.support import rsa_private_key


@pytest.fixture(scope="session")
def orders_database_url(database_factory: Callable[[str], str]) -> str:
    """A fresh PostgreSQL database for this session."""
    return database_factory("orders")


@pytest.fixture(scope="session")
def app(orders_database_url: str) -> Iterator[Flask]:
    """The orders app on the session's database, migrated once, verifying test tokens."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APP_ENV", "test")
        application = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": orders_database_url})
    with application.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS_DIR)
    yield application
    with application.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    """The orders app on a fresh SQLite file, as `make run` runs it, migrated."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APP_ENV", "test")
        application = create_app(
            {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'orders.db'}"}
        )
    with application.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS_DIR)
    yield application
    with application.app_context():
        for engine in db.engines.values():
            engine.dispose()


def _accept_tokens_of(application: Flask, factory: TokenFactory) -> None:
    """Swap the app's verifier for one that knows the factory's key (auth's JWKS otherwise)."""
    tokens.init_app(
        application,
        tokens.TokenVerifier(
            tokens.StaticKeySource(factory.jwks()),
            issuer=application.config["JWT_ISSUER"],
            audience=application.config["JWT_AUDIENCE"],
        ),
    )


@pytest.fixture(scope="session")
def token_factory(app: Flask) -> TokenFactory:
    """Signs tokens the app accepts (its verifier is swapped for one knowing our key)."""
    factory = TokenFactory(
        rsa_private_key(),
        issuer=app.config["JWT_ISSUER"],
        audience=app.config["JWT_AUDIENCE"],
    )
    _accept_tokens_of(app, factory)
    return factory


@pytest.fixture
def sqlite_client(sqlite_app: Flask, token_factory: TokenFactory) -> FlaskClient:
    """A test client of the SQLite app, with CATALOGUE, accepting the same tokens as `client`."""
    _accept_tokens_of(sqlite_app, token_factory)
    add_products(sqlite_app, *CATALOGUE)
    return sqlite_app.test_client()


@pytest.fixture(autouse=True)
def empty_database(request: pytest.FixtureRequest) -> None:
    """Every test that uses the database starts from empty tables and CATALOGUE's products."""
    if "app" not in request.fixturenames:
        return  # a unit test
    app: Flask = request.getfixturevalue("app")
    with app.app_context():
        tables = ", ".join(table.name for table in db.metadata.sorted_tables)
        with db.engine.begin() as conn:
            # Fail loudly instead of hanging if an earlier test left a transaction open.
            conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    add_products(app, *CATALOGUE)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def alice(token_factory: TokenFactory) -> dict[str, str]:
    """Headers of a regular user, Alice."""
    return token_factory.headers("user-alice")


@pytest.fixture
def bob(token_factory: TokenFactory) -> dict[str, str]:
    """Headers of another regular user, Bob."""
    return token_factory.headers("user-bob")


@pytest.fixture
def admin(token_factory: TokenFactory) -> dict[str, str]:
    """Headers of an admin."""
    return token_factory.headers("user-admin", admin=True)


@pytest.fixture
def place(client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """Place an order as someone and return its JSON (asserting the 201)."""

    def place_order(headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
        response = client.post("/api/v1/orders", json=order_body(**overrides), headers=headers)
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    return place_order


@pytest.fixture
def live_server(app: Flask, token_factory: TokenFactory) -> Iterator[str]:
    """The app behind a real threaded HTTP server: concurrent requests, concurrent transactions."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="live-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def order_events(amqp_url: str) -> Iterator[EventQueue]:
    """A queue receiving every order.* event published on the session's vhost."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        declare_exchange(channel)
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, EXCHANGE, routing_key="order.#")
        yield EventQueue(channel, queue)
    finally:
        connection.close()


@pytest.fixture
def relay(app: Flask, amqp_url: str) -> Callable[[], int]:
    """Publish the outbox once through the real relay code; return how many were sent."""

    def relay_once() -> int:
        with app.app_context(), Publisher(amqp_url) as publisher:
            return relay_outbox_once(db.session(), Outbox, publisher)

    return relay_once
