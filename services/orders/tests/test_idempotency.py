"""Idempotency-Key on create: a retried request gets the first answer, never a second order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from services.orders import idempotency
from services.orders.models import IdempotencyKey, Order, Outbox, db
from services.orders.tests.helpers import EventQueue, order_body, rows
from shared.db import utcnow

pytestmark = pytest.mark.integration

Headers = dict[str, str]


def test_a_retry_with_the_same_key_and_body_gets_the_first_answer_and_no_second_order(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    headers = {**alice, "Idempotency-Key": "checkout-41"}
    first = client.post("/api/v1/orders", json=order_body(), headers=headers)
    retry = client.post("/api/v1/orders", json=order_body(), headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["ETag"] == first.headers["ETag"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(rows(app, Order)) == 1
    assert len(rows(app, Outbox)) == 1


def test_on_sqlite_a_retry_with_the_same_key_gets_the_first_answer_as_under_make_run(
    sqlite_app: Flask, sqlite_client: FlaskClient, alice: Headers
) -> None:
    headers = {**alice, "Idempotency-Key": "checkout-40"}
    first = sqlite_client.post("/api/v1/orders", json=order_body(), headers=headers)
    retry = sqlite_client.post("/api/v1/orders", json=order_body(), headers=headers)
    other = sqlite_client.post(
        "/api/v1/orders",
        json=order_body(currency="EUR", items=[{"sku": "PEN-7", "quantity": 3}]),
        headers=headers,
    )
    assert first.status_code == retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422
    assert len(rows(sqlite_app, Order)) == 1
    assert [k.key for k in rows(sqlite_app, IdempotencyKey)] == ["checkout-40"]


def test_the_replay_is_the_first_answer_even_after_the_order_changed(
    client: FlaskClient, alice: Headers
) -> None:
    headers = {**alice, "Idempotency-Key": "checkout-42"}
    first = client.post("/api/v1/orders", json=order_body(), headers=headers)
    client.post(f"/api/v1/orders/{first.get_json()['id']}/cancel", headers=alice)
    retry = client.post("/api/v1/orders", json=order_body(), headers=headers)
    assert retry.get_json() == first.get_json()
    assert retry.get_json()["status"] == "pending"


def test_the_same_body_with_keys_in_another_order_counts_as_the_same_request(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    headers = {**alice, "Idempotency-Key": "checkout-43"}
    body = order_body()
    reordered = {
        "items": [dict(reversed(list(i.items()))) for i in body["items"]],
        "currency": "EUR",
    }
    client.post("/api/v1/orders", json=body, headers=headers)
    assert client.post("/api/v1/orders", json=reordered, headers=headers).status_code == 201
    assert len(rows(app, Order)) == 1


def test_the_same_key_with_another_body_is_422_and_creates_nothing(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    headers = {**alice, "Idempotency-Key": "checkout-44"}
    client.post("/api/v1/orders", json=order_body(), headers=headers)
    other = client.post("/api/v1/orders", json=order_body(currency="USD"), headers=headers)
    assert other.status_code == 422
    assert other.mimetype == "application/problem+json"
    assert "Idempotency-Key" in other.get_json()["errors"]
    assert len(rows(app, Order)) == 1


def test_keys_belong_to_one_user(
    app: Flask, client: FlaskClient, alice: Headers, bob: Headers
) -> None:
    for headers in (alice, bob):
        response = client.post(
            "/api/v1/orders", json=order_body(), headers={**headers, "Idempotency-Key": "same"}
        )
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers
    assert sorted(o.user_id for o in rows(app, Order)) == ["user-alice", "user-bob"]


def test_an_expired_key_places_a_new_order(app: Flask, client: FlaskClient, alice: Headers) -> None:
    headers = {**alice, "Idempotency-Key": "checkout-45"}
    first = client.post("/api/v1/orders", json=order_body(), headers=headers).get_json()
    with app.app_context():
        db.session.execute(
            sa.update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=25))
        )
        db.session.commit()
    second = client.post("/api/v1/orders", json=order_body(), headers=headers)
    assert second.status_code == 201
    assert second.get_json()["id"] != first["id"]
    assert "Idempotent-Replayed" not in second.headers
    assert len(rows(app, Order)) == 2


def test_the_purge_deletes_only_expired_keys(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    for key in ("old-1", "old-2", "old-3", "fresh"):
        client.post("/api/v1/orders", json=order_body(), headers={**alice, "Idempotency-Key": key})
    with app.app_context():
        db.session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.key.like("old-%"))
            .values(created_at=utcnow() - timedelta(days=2))
        )
        db.session.commit()
        batches = []
        while not batches or batches[-1] == 2:
            batches.append(
                idempotency.purge_expired_idempotency_keys(session=db.session(), batch_size=2)
            )
            db.session.commit()
    assert batches == [2, 1]
    assert [k.key for k in rows(app, IdempotencyKey)] == ["fresh"]


def test_twenty_concurrent_retries_make_one_order_and_one_event(
    app: Flask,
    live_server: str,
    alice: Headers,
    order_events: EventQueue,
    relay: Callable[[], int],
) -> None:
    headers = {**alice, "Idempotency-Key": "double-click"}
    start = threading.Barrier(20)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def retry() -> None:
        start.wait()
        response = requests.post(
            f"{live_server}/api/v1/orders", json=order_body(), headers=headers, timeout=30
        )
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=retry) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [a.status_code for a in answers] == [201] * 20
    bodies: list[dict[str, Any]] = [a.json() for a in answers]
    assert len({b["id"] for b in bodies}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    [order] = rows(app, Order)
    assert str(order.id) == bodies[0]["id"]
    assert len(rows(app, Outbox)) == 1
    assert relay() == 1
    events = order_events.wait_for(1)
    events += order_events.drain()  # anything extra would show up here
    assert [(e.type, e.data["order_id"]) for e in events] == [("order.created", str(order.id))]
