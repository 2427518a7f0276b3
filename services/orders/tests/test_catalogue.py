"""The product catalogue: anyone lists it, admins change it, orders take their prices from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.orders.catalogue import NewProduct
from services.orders.models import Order, OrderItem, Outbox, Product
from services.orders.tests.helpers import add_products, captured_queries, order_body, rows

pytestmark = pytest.mark.integration

Place = Callable[..., dict[str, Any]]
Headers = dict[str, str]


def product(**overrides: Any) -> dict[str, Any]:
    """A valid create body for a product; keyword arguments replace its fields."""
    return {
        "sku": "LAMP-1",
        "name": "Desk lamp",
        "unit_price_cents": 4500,
        "currency": "EUR",
        **overrides,
    }


def skus(page: dict[str, Any]) -> list[str]:
    """The SKUs of a page of products, in order."""
    return [p["sku"] for p in page["items"]]


# -- listing ---------------------------------------------------------------------------------


def test_anyone_lists_the_products_on_sale_newest_first_without_a_token(
    client: FlaskClient,
) -> None:
    response = client.get("/api/v1/products")
    assert response.status_code == 200
    page = response.get_json()
    assert skus(page) == ["PEN-7", "BOOK-1"]  # CATALOGUE, added in that order
    assert page["next_cursor"] is None
    pen = page["items"][0]
    assert {k: pen[k] for k in ("sku", "name", "unit_price_cents", "currency", "active")} == {
        "sku": "PEN-7",
        "name": "A pen",
        "unit_price_cents": 199,
        "currency": "EUR",
        "active": True,
    }


def test_pages_of_products_walk_the_whole_catalogue_without_repeats(
    app: Flask, client: FlaskClient
) -> None:
    for n in range(5):
        add_products(app, NewProduct(f"P-{n}", f"Product {n}", 100 + n, "EUR"))
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/products", query_string=query).get_json()
        seen += skus(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["P-4", "P-3", "P-2", "P-1", "P-0", "PEN-7", "BOOK-1"]


def test_withdrawn_products_are_listed_apart_from_the_ones_on_sale(
    client: FlaskClient, admin: Headers
) -> None:
    client.patch("/api/v1/products/PEN-7", json={"active": False}, headers=admin)
    assert skus(client.get("/api/v1/products").get_json()) == ["BOOK-1"]
    withdrawn = client.get("/api/v1/products", query_string={"active": "false"}).get_json()
    assert skus(withdrawn) == ["PEN-7"] and withdrawn["items"][0]["active"] is False


@pytest.mark.parametrize(
    "query",
    [{"limit": 101}, {"active": "maybe"}, {"cursor": "nope"}, {"sku": "BOOK-1"}],
    ids=["limit-101", "active-not-a-boolean", "cursor-garbage", "unknown-argument"],
)
def test_a_bad_product_query_is_422_naming_the_parameter(
    client: FlaskClient, query: dict[str, Any]
) -> None:
    response = client.get("/api/v1/products", query_string=query)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert set(response.get_json()["errors"]) == set(query)


# -- creating and changing (admins) ----------------------------------------------------------


def test_an_admin_adds_a_product_and_it_is_listed(client: FlaskClient, admin: Headers) -> None:
    response = client.post("/api/v1/products", json=product(), headers=admin)
    assert response.status_code == 201
    created = response.get_json()
    assert response.headers["Location"] == "/api/v1/products/LAMP-1"
    assert (created["sku"], created["unit_price_cents"], created["active"]) == (
        "LAMP-1",
        4500,
        True,
    )
    assert skus(client.get("/api/v1/products").get_json())[0] == "LAMP-1"


@pytest.mark.parametrize("who", ["nobody", "user"])
def test_only_admins_change_the_catalogue(
    app: Flask, client: FlaskClient, alice: Headers, who: str
) -> None:
    headers = {} if who == "nobody" else alice
    expected = 401 if who == "nobody" else 403
    created = client.post("/api/v1/products", json=product(), headers=headers)
    changed = client.patch("/api/v1/products/BOOK-1", json={"unit_price_cents": 0}, headers=headers)
    for response in (created, changed):
        assert response.status_code == expected
        assert response.mimetype == "application/problem+json"
    assert sorted((p.sku, p.unit_price_cents) for p in rows(app, Product)) == [
        ("BOOK-1", 1250),
        ("PEN-7", 199),
    ]


def test_a_taken_sku_is_409_and_the_product_stays_as_it_was(
    app: Flask, client: FlaskClient, admin: Headers
) -> None:
    response = client.post(
        "/api/v1/products", json=product(sku="BOOK-1", unit_price_cents=1), headers=admin
    )
    assert response.status_code == 409
    assert response.get_json()["errors"] == {"sku": ["Already in the catalogue."]}
    [book] = [p for p in rows(app, Product) if p.sku == "BOOK-1"]
    assert (book.name, book.unit_price_cents) == ("A book", 1250)


BAD_PRODUCTS = [
    pytest.param({k: v for k, v in product().items() if k != "sku"}, "sku", id="sku-missing"),
    pytest.param(product(sku="has space"), "sku", id="sku-space"),
    pytest.param(product(name=""), "name", id="name-empty"),
    pytest.param(product(name="Lamp\nSubject: free"), "name", id="name-line-break"),
    pytest.param(product(name="x" * 201), "name", id="name-201"),
    pytest.param(product(unit_price_cents=-1), "unit_price_cents", id="price-negative"),
    pytest.param(product(unit_price_cents=10**9 + 1), "unit_price_cents", id="price-too-big"),
    pytest.param(product(unit_price_cents=9.99), "unit_price_cents", id="price-decimal"),
    pytest.param(product(unit_price_cents="45"), "unit_price_cents", id="price-text"),
    pytest.param(product(currency="eur"), "currency", id="currency-lowercase"),
    pytest.param(product(currency="XAU"), "currency", id="currency-gold"),
    pytest.param(product(active="yes"), "active", id="active-text"),
    pytest.param(product(id="00000000-0000-0000-0000-000000000000"), "id", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "field"), BAD_PRODUCTS)
def test_an_invalid_product_is_422_naming_the_field(
    app: Flask, client: FlaskClient, admin: Headers, body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/products", json=body, headers=admin)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert len(rows(app, Product)) == 2


def test_an_admin_changes_a_products_price_and_availability(
    client: FlaskClient, admin: Headers
) -> None:
    response = client.patch(
        "/api/v1/products/BOOK-1",
        json={"unit_price_cents": 1500, "name": "A dearer book"},
        headers=admin,
    )
    assert response.status_code == 200
    changed = response.get_json()
    assert (changed["sku"], changed["name"], changed["unit_price_cents"]) == (
        "BOOK-1",
        "A dearer book",
        1500,
    )
    assert changed["currency"] == "EUR" and changed["active"] is True
    [book] = [p for p in client.get("/api/v1/products").get_json()["items"] if p["sku"] == "BOOK-1"]
    assert book == changed


def test_a_sku_with_a_slash_is_addressed_by_its_path(client: FlaskClient, admin: Headers) -> None:
    created = client.post("/api/v1/products", json=product(sku="DE/LAMP-1"), headers=admin)
    assert created.headers["Location"] == "/api/v1/products/DE/LAMP-1"
    changed = client.patch(created.headers["Location"], json={"active": False}, headers=admin)
    assert changed.status_code == 200 and changed.get_json()["sku"] == "DE/LAMP-1"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/products/NOPE-1", {"active": False}, 404),
        ("/api/v1/products/BOOK-1", {}, 422),
        ("/api/v1/products/BOOK-1", {"sku": "BOOK-2"}, 422),
        ("/api/v1/products/BOOK-1", {"unit_price_cents": -5}, 422),
        ("/api/v1/products/BOOK-1", {"currency": "ABC"}, 422),
        ("/api/v1/products/BOOK-1", {"name": None}, 422),
    ],
    ids=["unknown-sku", "nothing", "sku", "price-negative", "currency-unknown", "name-null"],
)
def test_a_bad_change_is_refused_and_changes_nothing(
    app: Flask, client: FlaskClient, admin: Headers, path: str, body: Any, status: int
) -> None:
    response = client.patch(path, json=body, headers=admin)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    [book] = [p for p in rows(app, Product) if p.sku == "BOOK-1"]
    assert (book.sku, book.unit_price_cents, book.currency, book.name) == (
        "BOOK-1",
        1250,
        "EUR",
        "A book",
    )


# -- orders are priced from the catalogue ------------------------------------------------------


def test_an_order_with_a_client_price_is_422_and_places_nothing(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    body = {"currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 50, "unit_price_cents": 0}]}
    response = client.post("/api/v1/orders", json=body, headers=alice)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "unit_price_cents" in response.get_json()["errors"]["items"]["0"]
    assert rows(app, Order) == [] and rows(app, Outbox) == []


def test_an_orders_total_is_the_catalogue_prices_at_placement_and_stays_so(
    app: Flask, client: FlaskClient, place: Place, alice: Headers, admin: Headers
) -> None:
    placed = place(alice, items=[{"sku": "BOOK-1", "quantity": 3}, {"sku": "PEN-7", "quantity": 2}])
    assert placed["total_cents"] == 3 * 1250 + 2 * 199
    assert [i["unit_price_cents"] for i in placed["items"]] == [1250, 199]

    for change in ({"unit_price_cents": 9999}, {"active": False}):
        assert (
            client.patch("/api/v1/products/BOOK-1", json=change, headers=admin).status_code == 200
        )

    again = client.get(f"/api/v1/orders/{placed['id']}", headers=alice).get_json()
    assert again["total_cents"] == 3 * 1250 + 2 * 199
    assert [i["unit_price_cents"] for i in again["items"]] == [1250, 199]
    assert sorted(i.unit_price_cents for i in rows(app, OrderItem)) == [199, 1250]
    # A new order pays the new price (once the product is on sale again).
    client.patch("/api/v1/products/BOOK-1", json={"active": True}, headers=admin)
    assert place(alice, items=[{"sku": "BOOK-1", "quantity": 1}])["total_cents"] == 9999


@pytest.mark.parametrize(
    ("items", "refused", "message"),
    [
        ([{"sku": "NOPE-1", "quantity": 1}], 0, "No product has this SKU."),
        ([{"sku": "BOOK-1", "quantity": 1}, {"sku": "OLD-1", "quantity": 1}], 1, "no longer"),
        ([{"sku": "PEN-7", "quantity": 1}, {"sku": "CABLE-2", "quantity": 1}], 1, "USD, not EUR"),
    ],
    ids=["unknown", "inactive", "other-currency"],
)
def test_a_line_the_catalogue_cannot_price_is_422_naming_it(
    app: Flask,
    client: FlaskClient,
    alice: Headers,
    items: list[dict[str, Any]],
    refused: int,
    message: str,
) -> None:
    add_products(
        app,
        NewProduct("OLD-1", "Withdrawn", 100, "EUR", active=False),
        NewProduct("CABLE-2", "USB-C cable", 1499, "USD"),
    )
    response = client.post("/api/v1/orders", json=order_body(items=items), headers=alice)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    errors = response.get_json()["errors"]
    assert list(errors["items"]) == [str(refused)]
    [text] = errors["items"][str(refused)]["sku"]
    assert message in text
    assert rows(app, Order) == [] and rows(app, Outbox) == []


def test_every_refused_line_is_named_at_once(client: FlaskClient, alice: Headers) -> None:
    items = [{"sku": "NOPE-1", "quantity": 1}, {"sku": "BOOK-1", "quantity": 1}]
    items.append({"sku": "NOPE-2", "quantity": 1})
    response = client.post("/api/v1/orders", json=order_body(items=items), headers=alice)
    assert response.status_code == 422
    assert set(response.get_json()["errors"]["items"]) == {"0", "2"}


def test_pricing_an_order_reads_the_catalogue_once_whatever_its_lines(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    add_products(app, *(NewProduct(f"P-{n}", f"Product {n}", 10, "EUR") for n in range(20)))
    items = [{"sku": f"P-{n}", "quantity": 1} for n in range(20)]
    with captured_queries(app) as statements:
        response = client.post("/api/v1/orders", json=order_body(items=items), headers=alice)
    assert response.status_code == 201 and response.get_json()["total_cents"] == 200
    catalogue_reads = [s for s, _ in statements if "FROM products" in s]
    assert len(catalogue_reads) == 1, statements


# -- seeding a local run ---------------------------------------------------------------------


def test_seeding_adds_the_missing_demo_products_once_and_changes_no_existing_one(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-products"])
    assert first.exit_code == 0, first.output
    assert "3 of 5" in first.output  # BOOK-1 and PEN-7 were there already
    again = runner.invoke(args=["seed-products"])
    assert again.exit_code == 0 and "0 of 5" in again.output

    catalogue = {p.sku: (p.name, p.unit_price_cents, p.currency) for p in rows(app, Product)}
    assert catalogue["BOOK-1"] == ("A book", 1250, "EUR")  # as it was, not the demo's
    assert set(catalogue) == {"BOOK-1", "PEN-7", "MUG-3", "LAPTOP-14", "CABLE-2"}
    items = [{"sku": "MUG-3", "quantity": 2}]
    placed = client.post("/api/v1/orders", json=order_body(items=items), headers=alice)
    assert placed.status_code == 201 and placed.get_json()["total_cents"] == 2 * 899


def test_seeding_works_on_the_sqlite_database_of_a_local_run(sqlite_app: Flask) -> None:
    runner = sqlite_app.test_cli_runner()
    assert "5 of 5" in runner.invoke(args=["seed-products"]).output
    assert "0 of 5" in runner.invoke(args=["seed-products"]).output
    assert len(rows(sqlite_app, Product)) == 5


def test_a_retry_after_a_price_change_gets_the_first_answer_and_places_nothing_new(
    app: Flask, client: FlaskClient, alice: Headers, admin: Headers
) -> None:
    headers = {**alice, "Idempotency-Key": "order-1"}
    first = client.post("/api/v1/orders", json=order_body(), headers=headers)
    client.patch("/api/v1/products/BOOK-1", json={"unit_price_cents": 1}, headers=admin)
    retry = client.post("/api/v1/orders", json=order_body(), headers=headers)
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    assert len(rows(app, Order)) == 1
