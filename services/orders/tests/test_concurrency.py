"""Concurrent changes to one order: optimistic concurrency, no lost update."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from services.orders.models import Order, Outbox, db
from services.orders.tests.helpers import rows

pytestmark = pytest.mark.integration

Headers = dict[str, str]


def _waiting_on_locks(conn: sa.Connection) -> int:
    return int(
        conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    )


def race(
    app: Flask, order_id: str, requests_to_send: list[Callable[[], requests.Response]]
) -> list[requests.Response]:
    """Send the requests at once and let them go only when all wait inside their UPDATE.

    A row lock held here parks every request's conditional UPDATE of the order; once all
    are parked (both read the same version by then), the lock is released and they race.
    """
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def send(request: Callable[[], requests.Response]) -> None:
        response = request()
        with lock:
            answers.append(response)

    with app.app_context():
        engine = db.engine
    with engine.connect() as blocker, engine.connect() as observer:
        blocker.execute(
            sa.text("SELECT 1 FROM orders WHERE id = :id FOR UPDATE"), {"id": uuid.UUID(order_id)}
        )
        threads = [threading.Thread(target=send, args=(r,)) for r in requests_to_send]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while _waiting_on_locks(observer) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.02)
            observer.rollback()  # a fresh snapshot of pg_stat_activity
        assert _waiting_on_locks(observer) == len(threads), "requests never reached the UPDATE"
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def post(url: str, headers: Headers, body: dict[str, Any] | None = None) -> Callable[[], Any]:
    """A deferred POST."""
    return lambda: requests.post(url, json=body, headers=headers, timeout=30)


def test_two_concurrent_changes_from_the_same_etag_give_one_200_and_one_412(
    app: Flask,
    live_server: str,
    place: Callable[..., dict[str, Any]],
    alice: Headers,
    admin: Headers,
) -> None:
    order = place(alice)
    url = f"{live_server}/api/v1/orders/{order['id']}"
    same_etag = {**admin, "If-Match": f'"{order["id"]}-1"'}
    answers = race(
        app,
        order["id"],
        [
            post(f"{url}/status", same_etag, {"status": "confirmed"}),
            post(f"{url}/cancel", same_etag),
        ],
    )
    assert sorted(a.status_code for a in answers) == [200, 412]
    winner = next(a for a in answers if a.status_code == 200).json()
    [stored] = rows(app, Order)
    assert (stored.status, stored.version) == (winner["status"], 2)
    changes = [o for o in rows(app, Outbox) if o.type == "order.status_changed"]
    assert [c.payload["data"]["to"] for c in changes] == [winner["status"]]


def test_without_if_match_the_loser_of_a_race_is_rechecked_against_the_new_state(
    app: Flask,
    live_server: str,
    place: Callable[..., dict[str, Any]],
    alice: Headers,
    admin: Headers,
) -> None:
    order = place(alice)
    url = f"{live_server}/api/v1/orders/{order['id']}"
    answers = race(
        app,
        order["id"],
        [post(f"{url}/status", admin, {"status": "confirmed"}), post(f"{url}/cancel", alice)],
    )
    # Whichever ran first, cancelling stays legal after confirming, and confirming is not
    # legal after cancelling: the outcome depends on the order, never a lost update.
    codes = sorted(a.status_code for a in answers)
    [stored] = rows(app, Order)
    changes = [o.payload["data"] for o in rows(app, Outbox) if o.type == "order.status_changed"]
    if codes == [200, 200]:
        assert (stored.status, stored.version) == ("cancelled", 3)
        assert [(c["from"], c["to"]) for c in changes] == [
            ("pending", "confirmed"),
            ("confirmed", "cancelled"),
        ]
    else:
        assert codes == [200, 409]
        assert (stored.status, stored.version) == ("cancelled", 2)
        assert [(c["from"], c["to"]) for c in changes] == [("pending", "cancelled")]
