"""The suite from a client's seat: everything through the gateway, every process real."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests

# Every event the module causes is checked against the served AsyncAPI document.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("broker_tap")]

# BOOK-1 is one of the demo products the suite seeds, at 1250 per unit.
ORDER = {"currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 2}]}


def notifications_of(client, event_type: str) -> list[dict]:
    response = client.request("GET", "/api/v1/notifications?limit=100")
    assert response.status_code == 200, response.text
    return [n for n in response.json()["items"] if n["event_type"] == event_type]


def place_order(client) -> dict:
    response = client.request(
        "POST", "/api/v1/orders", json=ORDER, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"]
    return response.json()


@pytest.fixture(scope="module")
def alice(register):
    return register("Alice")


@pytest.fixture(scope="module")
def alices_order(alice) -> dict:
    return place_order(alice)


def test_a_new_user_places_an_order_and_is_notified(alice, alices_order, wait_for):
    response = alice.request("GET", f"/api/v1/orders/{alices_order['id']}")

    assert response.status_code == 200
    assert response.json()["total_cents"] == 2500
    assert response.headers["ETag"]
    assert response.headers["X-Request-ID"]
    (created,) = wait_for(
        lambda: notifications_of(alice, "order.created"), timeout=15, what="order notification"
    )
    assert wait_for(lambda: notifications_of(alice, "user.registered"), timeout=15)
    assert created["read"] is False


def test_another_user_sees_none_of_it(register, alice, alices_order):
    bob = register("Bob")

    order = bob.request("GET", f"/api/v1/orders/{alices_order['id']}")
    listing = bob.request("GET", "/api/v1/orders")

    assert order.status_code == 404
    assert order.headers["Content-Type"] == "application/problem+json"
    assert alices_order["id"] not in {o["id"] for o in listing.json()["items"]}
    assert notifications_of(bob, "order.created") == []


def test_the_admin_confirms_and_ships_and_the_owner_hears_of_each(
    admin, alice, alices_order, wait_for
):
    path = f"/api/v1/orders/{alices_order['id']}/status"

    for status in ("confirmed", "shipped"):
        response = admin.request("POST", path, json={"status": status})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status

    changes = wait_for(
        lambda: len(found := notifications_of(alice, "order.status_changed")) >= 2 and found,
        timeout=15,
        what="two status notifications",
    )
    assert len(changes) == 2
    assert alice.request("POST", path, json={"status": "delivered"}).status_code == 403


def test_a_deactivated_users_token_is_refused_once_the_gateway_hears_of_it(
    register, admin, wait_for
):
    carol = register("Carol")
    assert carol.request("GET", "/api/v1/orders").status_code == 200

    response = admin.request("PATCH", f"/api/v1/auth/users/{carol.user_id}", json={"active": False})
    assert response.status_code == 200, response.text

    # The deactivation travels auth's outbox -> relay -> broker -> gateway worker -> Redis;
    # wait for that event itself rather than a fixed number of seconds.
    wait_for(
        lambda: carol.request("GET", "/api/v1/orders").status_code == 401,
        timeout=30,
        what="the gateway refusing the deactivated user's token",
    )
    refused = carol.request("GET", "/api/v1/orders")
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_orders_are_priced_from_the_catalogue_the_admin_keeps(suite, admin, register):
    sku = f"E2E-{uuid.uuid4().hex[:8]}"
    created = admin.request(
        "POST",
        "/api/v1/products",
        json={"sku": sku, "name": "Lamp", "unit_price_cents": 4500, "currency": "EUR"},
    )
    assert created.status_code == 201, created.text
    listed = requests.get(suite.url("gateway", "/api/v1/products"), timeout=10)  # no token
    assert listed.status_code == 200 and sku in {p["sku"] for p in listed.json()["items"]}
    dave = register("Dave")
    withdrawn = dave.request("PATCH", f"/api/v1/products/{sku}", json={"active": False})
    assert withdrawn.status_code == 403

    priced = {"sku": sku, "quantity": 3, "unit_price_cents": 1}
    refused = dave.request("POST", "/api/v1/orders", json={"currency": "EUR", "items": [priced]})
    assert refused.status_code == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "unit_price_cents" in refused.json()["errors"]["items"]["0"]

    order = {"currency": "EUR", "items": [{"sku": sku, "quantity": 3}]}
    placed = dave.request("POST", "/api/v1/orders", json=order)
    assert placed.status_code == 201, placed.text
    assert placed.json()["total_cents"] == 3 * 4500
    changed = admin.request("PATCH", f"/api/v1/products/{sku}", json={"unit_price_cents": 9900})
    assert changed.status_code == 200, changed.text
    again = dave.request("GET", f"/api/v1/orders/{placed.json()['id']}").json()
    assert again["total_cents"] == 3 * 4500
    assert again["items"][0]["unit_price_cents"] == 4500


def test_a_forged_token_never_gets_past_the_gateway(suite):
    response = requests.get(
        suite.url("gateway", "/api/v1/orders"),
        headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30.", "X-User-Id": "admin"},
        timeout=10,
    )

    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"


def test_the_gateway_publishes_every_services_api(suite):
    document = requests.get(suite.url("gateway", "/openapi.json"), timeout=10).json()

    assert "x-unavailable" not in document
    for path in (
        "/api/v1/auth/login",
        "/api/v1/orders",
        "/api/v1/products",
        "/api/v1/notifications",
    ):
        assert path in document["paths"]


def test_every_process_talks_to_the_broker_as_its_own_services_user(suite, alices_order):
    from tests.support import rabbitmqctl

    listed = rabbitmqctl("list_connections", "vhost", "user", "-q", "--no-table-headers")
    users = {
        line.split("\t")[1] for line in listed.splitlines() if line.split("\t")[0] == suite.vhost
    }

    # Relays (auth, orders), consumers (orders, notifications) and the revocation worker.
    services = ("auth", "orders", "notifications", "gateway")
    assert users == {f"{suite.vhost}-{service}" for service in services}


def set_user(admin, user_id: str, **change) -> None:
    response = admin.request("PATCH", f"/api/v1/auth/users/{user_id}", json=change)
    assert response.status_code == 200, response.text


def within(seconds: float, started: float, wait_for, predicate, what: str):
    """wait_for `predicate`, and fail unless it held within `seconds` of `started`."""
    held_at: list[float] = []

    def check():
        value = predicate()
        if value:
            held_at.append(time.monotonic())
        return value

    value = wait_for(check, timeout=seconds, what=what)
    assert held_at[0] - started <= seconds, f"{what}: {held_at[0] - started:.2f} s"
    return value


def test_a_reactivated_user_places_orders_again_within_two_seconds(register, admin, wait_for):
    dave = register("Dave")
    pending = place_order(dave)
    set_user(admin, dave.user_id, active=False)
    # Orders applied the deactivation: it cancelled the open order.
    wait_for(
        lambda: (
            admin.request("GET", f"/api/v1/orders/{pending['id']}").json()["status"] == "cancelled"
        ),
        timeout=15,
        what="the deactivation reaching orders",
    )

    set_user(admin, dave.user_id, active=True)
    reactivated = time.monotonic()
    dave.login()

    def placed():
        response = dave.request(
            "POST", "/api/v1/orders", json=ORDER, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert response.status_code in (201, 403), response.text
        return response.status_code == 201

    within(2.0, reactivated, wait_for, placed, "an order after the re-activation")


def test_a_demoted_admin_loses_every_admin_route_within_two_seconds(
    register, admin, alice, wait_for
):
    erin = register("Erin")
    set_user(admin, erin.user_id, role="admin")
    login = erin.request(
        "POST", "/api/v1/auth/login", json={"email": erin.email, "password": erin.password}
    )
    assert login.status_code == 200, login.text
    old = {"Authorization": f"Bearer {login.json()['access_token']}"}
    order = place_order(alice)
    # Every admin route, with a body an admin gets a 2xx or 4xx (never 401/403) for.
    admin_routes = [
        ("GET", "/api/v1/auth/users", None),
        ("PATCH", f"/api/v1/auth/users/{alice.user_id}", {"role": "user"}),
        ("POST", f"/api/v1/orders/{order['id']}/status", {"status": "delivered"}),  # 409
        # The catalogue: a taken SKU (409), a SKU nobody sells (404).
        (
            "POST",
            "/api/v1/products",
            {"sku": "BOOK-1", "name": "Book", "unit_price_cents": 1250, "currency": "EUR"},
        ),
        ("PATCH", "/api/v1/products/NO-SUCH-SKU-1", {"name": "Nothing"}),
    ]

    def answers(headers) -> list[int]:
        return [
            erin.request(method, path, json=body, headers=headers).status_code
            for method, path, body in admin_routes
        ]

    assert all(status not in (401, 403) for status in answers(old)), answers(old)

    set_user(admin, erin.user_id, role="user")
    demoted = time.monotonic()
    within(
        2.0,
        demoted,
        wait_for,
        lambda: all(status in (401, 403) for status in answers(old)),
        "every admin route refusing the old token",
    )

    refreshed = erin.request(
        "POST", "/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    access = refreshed.json()["access_token"]
    assert jwt.decode(access, options={"verify_signature": False})["roles"] == ["user"]
    new = {"Authorization": f"Bearer {access}"}
    assert erin.request("GET", "/api/v1/orders", headers=new).status_code == 200
    # A user: 403, or 404 for someone else's order (whose existence is not told).
    assert answers(new) == [403, 403, 404, 403, 403]
