"""What one POST /api/v1/orders costs in round trips to PostgreSQL (see bench/write_path.py).

Each statement is a round trip every order waits for: one more here is a slower API for
everyone, so the counts are pinned. A change that needs another statement updates them
here, on purpose.
"""

from __future__ import annotations

from collections import Counter

from flask import Flask
from flask.testing import FlaskClient

from services.orders.models import IdempotencyKey, Order, OrderItem, Outbox
from services.orders.tests.helpers import counting_statements, order_body, rows


def _post(client: FlaskClient, headers: dict[str, str], **extra: str) -> None:
    response = client.post("/api/v1/orders", json=order_body(), headers={**headers, **extra})
    assert response.status_code == 201, response.get_json()


def test_placing_an_order_takes_one_read_three_inserts_and_the_commit(
    app: Flask, client: FlaskClient, alice: dict[str, str]
) -> None:
    _post(client, alice)  # the first order of a user also records the customer
    with counting_statements(app) as statements:
        _post(client, alice)
    # The prices with the customer's flag (share-locked); the order, its two lines, the
    # outbox row.
    assert statements == Counter({"SELECT": 1, "INSERT": 3, "COMMIT": 1})
    assert len(rows(app, Order)) == 2
    assert len(rows(app, OrderItem)) == 4
    assert len(rows(app, Outbox)) == 2


def test_an_idempotency_key_adds_one_read_and_one_insert(
    app: Flask, client: FlaskClient, alice: dict[str, str]
) -> None:
    _post(client, alice)
    with counting_statements(app) as statements:
        _post(client, alice, **{"Idempotency-Key": "k-1"})
    assert statements == Counter({"SELECT": 2, "INSERT": 4, "COMMIT": 1})
    assert [k.key for k in rows(app, IdempotencyKey)] == ["k-1"]


def test_a_replay_is_one_read(app: Flask, client: FlaskClient, alice: dict[str, str]) -> None:
    _post(client, alice, **{"Idempotency-Key": "k-1"})
    with counting_statements(app) as statements:
        _post(client, alice, **{"Idempotency-Key": "k-1"})
    assert statements == Counter({"SELECT": 1, "COMMIT": 1})
    assert len(rows(app, Order)) == 1
