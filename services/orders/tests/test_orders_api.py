"""The orders API as a client sees it, against the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from services.orders.models import Order, Outbox, db
from services.orders.tests.helpers import captured_queries, order_body, rows

pytestmark = pytest.mark.integration

Place = Callable[..., dict[str, Any]]
Headers = dict[str, str]


def test_placing_an_order_answers_201_with_location_etag_and_the_catalogue_total(
    client: FlaskClient, alice: Headers
) -> None:
    response = client.post(
        "/api/v1/orders",
        json={
            "currency": "EUR",
            "items": [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 3}],
        },
        headers=alice,
    )
    assert response.status_code == 201
    order = response.get_json()
    assert order["status"] == "pending"
    assert order["user_id"] == "user-alice"
    assert order["total_cents"] == 2 * 1250 + 3 * 199  # the catalogue's prices
    assert [(i["sku"], i["quantity"], i["unit_price_cents"]) for i in order["items"]] == [
        ("BOOK-1", 2, 1250),
        ("PEN-7", 3, 199),
    ]
    assert response.headers["Location"] == f"/api/v1/orders/{order['id']}"
    assert response.headers["ETag"] == f'"{order["id"]}-1"'
    fetched = client.get(response.headers["Location"], headers=alice)
    assert fetched.status_code == 200
    assert fetched.get_json() == order
    assert fetched.headers["ETag"] == response.headers["ETag"]


def test_requests_without_a_valid_token_get_401_problem(client: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        response = client.get("/api/v1/orders", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"


def test_users_list_only_their_own_orders_and_admins_list_everyones(
    client: FlaskClient, place: Place, alice: Headers, bob: Headers, admin: Headers
) -> None:
    mine = place(alice)
    theirs = place(bob)
    alice_ids = [o["id"] for o in client.get("/api/v1/orders", headers=alice).get_json()["items"]]
    admin_ids = [o["id"] for o in client.get("/api/v1/orders", headers=admin).get_json()["items"]]
    assert alice_ids == [mine["id"]]
    assert admin_ids == [theirs["id"], mine["id"]]  # newest first


def test_pages_walk_all_orders_newest_first_without_repeats(
    client: FlaskClient, place: Place, alice: Headers
) -> None:
    placed = [place(alice)["id"] for _ in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/orders", query_string=query, headers=alice).get_json()
        seen += [o["id"] for o in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(placed))


def test_the_status_filter_returns_only_orders_in_that_status(
    client: FlaskClient, place: Place, alice: Headers
) -> None:
    kept = place(alice)
    cancelled = place(alice)
    client.post(f"/api/v1/orders/{cancelled['id']}/cancel", headers=alice)
    page = client.get("/api/v1/orders?status=cancelled", headers=alice).get_json()
    assert [o["id"] for o in page["items"]] == [cancelled["id"]]
    page = client.get("/api/v1/orders?status=pending", headers=alice).get_json()
    assert [o["id"] for o in page["items"]] == [kept["id"]]


def test_a_page_of_twenty_orders_with_items_takes_one_query(
    app: Flask, client: FlaskClient, place: Place, alice: Headers
) -> None:
    for _ in range(21):
        place(alice)
    with captured_queries(app) as statements:
        response = client.get("/api/v1/orders", headers=alice)
    page = response.get_json()
    assert len(page["items"]) == 20 and all(len(o["items"]) == 2 for o in page["items"])
    assert page["next_cursor"] is not None
    assert len(statements) == 1, statements


def test_reading_one_order_takes_one_query(
    app: Flask, client: FlaskClient, place: Place, alice: Headers
) -> None:
    order = place(alice)
    with captured_queries(app) as statements:
        response = client.get(f"/api/v1/orders/{order['id']}", headers=alice)
    assert response.status_code == 200 and len(response.get_json()["items"]) == 2
    assert len(statements) == 1, statements


def test_reads_run_outside_a_transaction(
    app: Flask, client: FlaskClient, place: Place, alice: Headers
) -> None:
    order = place(alice)
    autocommit: list[bool] = []

    def record(_conn: Any, cursor: Any, *_args: Any) -> None:
        autocommit.append(cursor.connection.autocommit)

    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", record)
    try:
        client.get(f"/api/v1/orders/{order['id']}", headers=alice)
        client.get("/api/v1/orders", headers=alice)
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", record)
    # Autocommit: no BEGIN before the query and no ROLLBACK after it, one round trip each.
    assert autocommit == [True, True]


def close_every_connection_of(app: Flask) -> int:
    """What the service sees when PostgreSQL restarts: each connection it holds is closed."""
    outside = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=sa.NullPool)
    try:
        with outside.connect() as conn:
            closed = conn.execute(
                sa.text(
                    # The timeout waits until each one is really gone.
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
                    "FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        outside.dispose()
    return int(closed)


def test_reads_and_writes_ride_through_the_database_closing_their_connections(
    app: Flask, client: FlaskClient, place: Place, alice: Headers
) -> None:
    order = place(alice)
    one, page = f"/api/v1/orders/{order['id']}", "/api/v1/orders"
    for url in (one, page, one, page):
        assert client.get(url, headers=alice).status_code == 200  # pools a connection
        assert close_every_connection_of(app) >= 1
        assert client.get(url, headers=alice).status_code == 200
    for _ in range(2):
        assert close_every_connection_of(app) >= 1
        assert client.post("/api/v1/orders", json=order_body(), headers=alice).status_code == 201


def test_another_users_order_is_not_found_on_every_route(
    app: Flask, client: FlaskClient, place: Place, alice: Headers, bob: Headers
) -> None:
    order = place(alice)
    url = f"/api/v1/orders/{order['id']}"
    answers = [
        client.get(url, headers=bob),
        client.post(f"{url}/cancel", headers=bob),
        client.post(f"{url}/status", json={"status": "confirmed"}, headers=bob),
    ]
    assert [r.status_code for r in answers] == [404, 404, 404]
    assert all(r.mimetype == "application/problem+json" for r in answers)
    assert [o.status for o in rows(app, Order)] == ["pending"]


def test_an_unknown_or_malformed_order_id_is_not_found(client: FlaskClient, alice: Headers) -> None:
    assert (
        client.get("/api/v1/orders/0b8e3a52-5c1f-4a43-9a55-3d4b2c9e7f10", headers=alice).status_code
        == 404
    )
    response = client.get("/api/v1/orders/not-a-uuid", headers=alice)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_a_user_may_not_change_the_status_of_their_own_order(
    client: FlaskClient, place: Place, alice: Headers
) -> None:
    order = place(alice)
    response = client.post(
        f"/api/v1/orders/{order['id']}/status", json={"status": "confirmed"}, headers=alice
    )
    assert response.status_code == 403


def test_an_admin_moves_an_order_to_delivered_and_each_step_changes_the_etag(
    app: Flask, client: FlaskClient, place: Place, alice: Headers, admin: Headers
) -> None:
    order = place(alice)
    etags = {f'"{order["id"]}-1"'}
    for status in ("confirmed", "shipped", "delivered"):
        response = client.post(
            f"/api/v1/orders/{order['id']}/status", json={"status": status}, headers=admin
        )
        assert response.status_code == 200
        assert response.get_json()["status"] == status
        etags.add(response.headers["ETag"])
    assert len(etags) == 4
    changes = [o.payload["data"] for o in rows(app, Outbox) if o.type == "order.status_changed"]
    assert [(c["from"], c["to"]) for c in changes] == [
        ("pending", "confirmed"),
        ("confirmed", "shipped"),
        ("shipped", "delivered"),
    ]


def test_an_illegal_transition_is_409_and_changes_nothing(
    app: Flask, client: FlaskClient, place: Place, alice: Headers, admin: Headers
) -> None:
    order = place(alice)
    response = client.post(
        f"/api/v1/orders/{order['id']}/status", json={"status": "delivered"}, headers=admin
    )
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    [stored] = rows(app, Order)
    assert (stored.status, stored.version) == ("pending", 1)
    assert [o.type for o in rows(app, Outbox)] == ["order.created"]


def test_an_owner_cancels_a_pending_order_once_then_gets_409(
    client: FlaskClient, place: Place, alice: Headers
) -> None:
    order = place(alice)
    first = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=alice)
    assert first.status_code == 200 and first.get_json()["status"] == "cancelled"
    again = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=alice)
    assert again.status_code == 409


def test_a_shipped_order_cannot_be_cancelled(
    client: FlaskClient, place: Place, alice: Headers, admin: Headers
) -> None:
    order = place(alice)
    for status in ("confirmed", "shipped"):
        client.post(f"/api/v1/orders/{order['id']}/status", json={"status": status}, headers=admin)
    assert client.post(f"/api/v1/orders/{order['id']}/cancel", headers=alice).status_code == 409


def test_an_admin_may_cancel_anyones_order(
    client: FlaskClient, place: Place, alice: Headers, admin: Headers
) -> None:
    order = place(alice)
    assert client.post(f"/api/v1/orders/{order['id']}/cancel", headers=admin).status_code == 200


def test_a_stale_if_match_is_412_and_a_current_one_succeeds(
    app: Flask, client: FlaskClient, place: Place, alice: Headers, admin: Headers
) -> None:
    order = place(alice)
    url = f"/api/v1/orders/{order['id']}"
    stale = client.get(url, headers=alice).headers["ETag"]
    confirmed = client.post(
        f"{url}/status", json={"status": "confirmed"}, headers={**admin, "If-Match": stale}
    )
    assert confirmed.status_code == 200
    for path, body in ((f"{url}/status", {"status": "shipped"}), (f"{url}/cancel", None)):
        refused = client.post(path, json=body, headers={**admin, "If-Match": stale})
        assert refused.status_code == 412
        assert refused.mimetype == "application/problem+json"
    assert client.get(url, headers=alice).get_json()["status"] == "confirmed"
    current = confirmed.headers["ETag"]
    cancelled = client.post(f"{url}/cancel", headers={**alice, "If-Match": current})
    assert cancelled.status_code == 200
    assert cancelled.headers["ETag"] == f'"{order["id"]}-3"'


@pytest.mark.parametrize(
    "if_match",
    [
        'W/"{id}-1"',
        '"{id}-x"',
        '"someone-else-1"',
        '""',
        '"x", ""',
        'W/"", ""',
        '"{id}-01"',
        "{id}-1",
        '"{id}-1"x',
    ],
)
@pytest.mark.parametrize("route", ["cancel", "status"])
def test_an_if_match_that_cannot_match_is_412_and_changes_nothing(
    app: Flask,
    client: FlaskClient,
    place: Place,
    alice: Headers,
    admin: Headers,
    if_match: str,
    route: str,
) -> None:
    order = place(alice)
    response = client.post(
        f"/api/v1/orders/{order['id']}/{route}",
        json={"status": "confirmed"} if route == "status" else None,
        headers={**admin, "If-Match": if_match.format(id=order["id"])},
    )
    assert response.status_code == 412
    assert response.mimetype == "application/problem+json"
    [stored] = rows(app, Order)
    assert (stored.status, stored.version) == ("pending", 1)
    assert [o.type for o in rows(app, Outbox)] == ["order.created"]


@pytest.mark.parametrize(
    ("route", "body", "status"),
    [("cancel", None, "cancelled"), ("status", {"status": "shipped"}, "shipped")],
)
def test_if_match_star_changes_an_existing_order_whatever_its_version(
    client: FlaskClient,
    place: Place,
    alice: Headers,
    admin: Headers,
    route: str,
    body: dict[str, str] | None,
    status: str,
) -> None:
    order = place(alice)
    url = f"/api/v1/orders/{order['id']}"
    client.post(f"{url}/status", json={"status": "confirmed"}, headers=admin)  # now version 2
    response = client.post(f"{url}/{route}", json=body, headers={**admin, "If-Match": "*"})
    assert response.status_code == 200
    assert response.get_json()["status"] == status
    assert response.headers["ETag"] == f'"{order["id"]}-3"'


def test_if_match_star_on_an_order_that_does_not_exist_is_404(
    client: FlaskClient, admin: Headers
) -> None:
    missing = "0b8e3a52-5c1f-4a43-9a55-3d4b2c9e7f10"
    for route, body in (("cancel", None), ("status", {"status": "confirmed"})):
        response = client.post(
            f"/api/v1/orders/{missing}/{route}", json=body, headers={**admin, "If-Match": "*"}
        )
        assert response.status_code == 404


def test_health_and_readiness_answer(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz").get_json()
    assert ready["checks"]["database"] == "ok"


def test_the_openapi_document_lists_the_order_routes(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/cancel",
        "/api/v1/orders/{order_id}/status",
        "/api/v1/products",
        "/api/v1/products/{sku}",
    } <= set(paths)
    assert set(paths["/api/v1/orders"]) >= {"get", "post"}
    assert set(paths["/api/v1/products"]) >= {"get", "post"}
    assert "security" not in paths["/api/v1/products"]["get"]  # anyone may list them
    assert set(paths["/api/v1/products/{sku}"]) >= {"patch"}
    status = paths["/api/v1/orders/{order_id}/status"]["post"]
    assert status["requestBody"]["required"] is True
    assert "If-Match" in {p["name"] for p in status["parameters"]}
    cancel = paths["/api/v1/orders/{order_id}/cancel"]["post"]
    assert cancel["requestBody"]["required"] is False  # no body at all is the usual call
    assert "If-Match" in {p["name"] for p in cancel["parameters"]}
