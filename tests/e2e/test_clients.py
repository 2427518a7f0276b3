"""What an API client builds on, with every process real: links and cheap polling."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e

ORDER = {"currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 1}]}


def order_notifications(client) -> list[dict]:
    response = client.request("GET", "/api/v1/notifications?limit=100")
    assert response.status_code == 200, response.text
    return [n for n in response.json()["items"] if n["event_type"] == "order.created"]


@pytest.fixture(scope="module")
def carol(register):
    return register("Carol")


@pytest.fixture(scope="module")
def carols_order(carol) -> dict:
    response = carol.request(
        "POST", "/api/v1/orders", json=ORDER, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_notification_leads_to_its_order_with_one_get(carol, carols_order, wait_for):
    (notification,) = wait_for(
        lambda: order_notifications(carol), timeout=15, what="order notification"
    )
    subject = notification["subject"]

    order = carol.request("GET", subject["path"])

    assert subject == {
        "type": "order",
        "id": carols_order["id"],
        "path": f"/api/v1/orders/{carols_order['id']}",
    }
    assert order.status_code == 200
    assert order.json() == carols_order


def test_polling_an_unchanged_page_is_a_304_that_spends_no_rate_limit(
    carol, carols_order, wait_for
):
    wait_for(lambda: order_notifications(carol), timeout=15, what="order notification")

    def settled() -> requests.Response | None:
        # The page changes until the pipeline is done with Carol (her deliveries are
        # recorded on it): unchanged for a second, it is what a poller sees from then on.
        first = carol.request("GET", "/api/v1/notifications")
        time.sleep(1.0)
        second = carol.request("GET", "/api/v1/notifications")
        return second if second.headers.get("ETag") == first.headers.get("ETag") else None

    page = wait_for(settled, timeout=30, what="Carol's notifications page settled")
    assert page.status_code == 200
    poll = {"If-None-Match": page.headers["ETag"]}

    polls = [carol.request("GET", "/api/v1/notifications", headers=poll) for _ in range(5)]

    assert page.headers["Cache-Control"] == "private, no-cache"
    assert [(p.status_code, p.content) for p in polls] == [(304, b"")] * 5
    assert {p.headers["RateLimit-Remaining"] for p in polls} == {
        page.headers["RateLimit-Remaining"]
    }
