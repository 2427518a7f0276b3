"""Helpers shared by the orders tests (fixtures live in conftest.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from services.orders.catalogue import NewProduct
from services.orders.models import Product, db
from shared.db import utcnow
from shared.events import Event, parse_event
from tests.support import access_token_claims, rsa_jwk, sign_access_token
from tests.support import counting_statements as support_counting_statements

KID = "orders-test-key"


class TokenFactory:
    """Signs access tokens the way auth does (RS256, kid, at+jwt, required claims)."""

    def __init__(self, key: rsa.RSAPrivateKey, *, issuer: str, audience: str) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience

    def token(self, user_id: str, roles: tuple[str, ...] = ("user",)) -> str:
        """A valid 15-minute access token for `user_id`."""
        claims = access_token_claims(
            issuer=self.issuer, audience=self.audience, sub=user_id, roles=list(roles)
        )
        return sign_access_token(claims, self.key, kid=KID)

    def headers(self, user_id: str, *, admin: bool = False) -> dict[str, str]:
        """Authorization header of a user (or an admin)."""
        roles = ("user", "admin") if admin else ("user",)
        return {"Authorization": f"Bearer {self.token(user_id, roles)}"}

    def jwks(self) -> dict[str, Any]:
        """The public half, as auth publishes it."""
        return {"keys": [rsa_jwk(self.key, KID)]}


# The catalogue every test starts with (conftest's `empty_database` puts it back).
CATALOGUE = (
    NewProduct(sku="BOOK-1", name="A book", unit_price_cents=1250, currency="EUR"),
    NewProduct(sku="PEN-7", name="A pen", unit_price_cents=199, currency="EUR"),
)
# What order_body() costs at those prices.
ORDER_BODY_TOTAL = 2 * 1250 + 1 * 199


def order_body(**overrides: Any) -> dict[str, Any]:
    """A valid create body naming CATALOGUE's products; keyword arguments replace its fields."""
    body: dict[str, Any] = {
        "currency": "EUR",
        "items": [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 1}],
    }
    body.update(overrides)
    return body


def add_products(app: Flask, *products: NewProduct) -> None:
    """Put products straight into the catalogue (the API's own tests go through HTTP)."""
    with app.app_context():
        now = utcnow()
        # One microsecond apart: listed newest first, the last one given comes first.
        db.session.add_all(
            Product(
                sku=p.sku,
                name=p.name,
                unit_price_cents=p.unit_price_cents,
                currency=p.currency,
                active=p.active,
                created_at=now + timedelta(microseconds=n),
                updated_at=now + timedelta(microseconds=n),
            )
            for n, p in enumerate(products)
        )
        db.session.commit()
        db.session.remove()


class EventQueue:
    """A private queue bound to the order events on the test broker."""

    def __init__(self, channel: Any, queue: str) -> None:
        self.channel = channel
        self.queue = queue

    def drain(self) -> list[Event]:
        """Every event waiting in the queue (acknowledged), oldest first."""
        events: list[Event] = []
        while True:
            method, _properties, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return events
            events.append(parse_event(body))

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Event]:
        """Drain until `count` events arrived or `timeout` passed."""
        events: list[Event] = []
        deadline = time.monotonic() + timeout
        while len(events) < count and time.monotonic() < deadline:
            events += self.drain()
            if len(events) < count:
                self.channel.connection.sleep(0.05)
        return events


@contextmanager
def captured_queries(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with their parameters) the app's engines run inside the block."""
    queries: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        queries.append((statement, parameters))

    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield queries
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", record)


def rows(app: Flask, model: Any) -> list[Any]:
    """All rows of a table, read in a fresh transaction."""
    with app.app_context():
        result = list(db.session.scalars(sa.select(model)).all())
        db.session.remove()
        return result


@contextmanager
def counting_statements(app: Flask) -> Iterator[Counter[str]]:
    """tests.support.counting_statements on every engine of the orders app."""
    with app.app_context():
        engines = list(db.engines.values())
    with support_counting_statements(*engines) as counts:
        yield counts
