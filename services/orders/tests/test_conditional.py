"""Conditional GETs of orders: strong ETag for one order, weak for pages, 304 with no body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.integration

Place = Callable[..., dict[str, Any]]
Headers = dict[str, str]


def test_an_unchanged_order_is_a_304_and_a_changed_one_is_sent_again(
    client: FlaskClient, place: Place, alice: Headers, admin: Headers
) -> None:
    order = place(alice)
    url = f"/api/v1/orders/{order['id']}"
    etag = client.get(url, headers=alice).headers["ETag"]

    unchanged = client.get(url, headers={**alice, "If-None-Match": etag})
    client.post(f"{url}/status", json={"status": "confirmed"}, headers=admin)
    changed = client.get(url, headers={**alice, "If-None-Match": etag})

    assert etag == f'"{order["id"]}-1"'  # strong: the order's own version
    assert (unchanged.status_code, unchanged.data) == (304, b"")
    assert unchanged.headers["ETag"] == etag
    assert changed.status_code == 200
    assert changed.get_json()["status"] == "confirmed"
    assert changed.headers["ETag"] == f'"{order["id"]}-2"'


def test_a_page_of_orders_has_a_weak_etag_that_changes_with_any_order_on_it(
    client: FlaskClient, place: Place, alice: Headers
) -> None:
    place(alice)
    page = client.get("/api/v1/orders", headers=alice)
    poll = {**alice, "If-None-Match": page.headers["ETag"]}

    unchanged = client.get("/api/v1/orders", headers=poll)
    place(alice)
    changed = client.get("/api/v1/orders", headers=poll)

    assert page.headers["ETag"].startswith('W/"')
    assert (unchanged.status_code, unchanged.data) == (304, b"")
    assert changed.status_code == 200
    assert len(changed.get_json()["items"]) == 2


def test_orders_may_be_kept_only_by_their_owners_cache(
    client: FlaskClient, place: Place, alice: Headers
) -> None:
    order = place(alice)

    for path in ("/api/v1/orders", f"/api/v1/orders/{order['id']}"):
        response = client.get(path, headers=alice)

        assert response.headers["Cache-Control"] == "private, no-cache"
        assert "Authorization" in response.headers["Vary"]
