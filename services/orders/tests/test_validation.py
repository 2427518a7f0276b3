"""Bad input gets a problem+json 4xx naming the field, never a 500 and never an order."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.orders.catalogue import NewProduct
from services.orders.models import Order
from services.orders.tests.helpers import add_products, order_body, rows

pytestmark = pytest.mark.integration

Headers = dict[str, str]


def item(**overrides: Any) -> dict[str, Any]:
    """A valid order line (of a CATALOGUE product) with some fields replaced."""
    return {"sku": "BOOK-1", "quantity": 1, **overrides}


def without(body: dict[str, Any], name: str) -> dict[str, Any]:
    """`body` without one field."""
    return {k: v for k, v in body.items() if k != name}


BAD_BODIES = [
    pytest.param(without(order_body(), "currency"), ["currency"], id="currency-missing"),
    pytest.param(order_body(currency="usd"), ["currency"], id="currency-lowercase"),
    pytest.param(order_body(currency="ABC"), ["currency"], id="currency-unknown"),
    pytest.param(order_body(currency="XAU"), ["currency"], id="currency-gold"),
    pytest.param(order_body(currency=978), ["currency"], id="currency-number"),
    pytest.param(without(order_body(), "items"), ["items"], id="items-missing"),
    pytest.param(order_body(items=[]), ["items"], id="items-empty"),
    pytest.param(
        order_body(items=[item(sku=f"S{i}") for i in range(101)]), ["items"], id="items-101"
    ),
    pytest.param(order_body(items={"sku": "A"}), ["items"], id="items-not-a-list"),
    pytest.param(order_body(items=["SKU-1"]), ["items", "0"], id="item-not-an-object"),
    pytest.param(order_body(items=[item(quantity=0)]), ["items", "0", "quantity"], id="qty-0"),
    pytest.param(
        order_body(items=[item(quantity=1001)]), ["items", "0", "quantity"], id="qty-1001"
    ),
    pytest.param(order_body(items=[item(quantity=-1)]), ["items", "0", "quantity"], id="qty-neg"),
    pytest.param(
        order_body(items=[item(quantity=1.5)]), ["items", "0", "quantity"], id="qty-float"
    ),
    pytest.param(order_body(items=[item(quantity="2")]), ["items", "0", "quantity"], id="qty-str"),
    pytest.param(
        order_body(items=[item(quantity=True)]), ["items", "0", "quantity"], id="qty-bool"
    ),
    # Prices come from the catalogue: a client-sent one is an unknown field, whatever it is.
    pytest.param(
        order_body(items=[item(unit_price_cents=0)]),
        ["items", "0", "unit_price_cents"],
        id="client-sets-price-zero",
    ),
    pytest.param(
        order_body(items=[item(), item(sku="PEN-7", unit_price_cents=199)]),
        ["items", "1", "unit_price_cents"],
        id="client-sets-the-catalogue-price",
    ),
    pytest.param(order_body(items=[item(sku="")]), ["items", "0", "sku"], id="sku-empty"),
    pytest.param(order_body(items=[item(sku="A" * 65)]), ["items", "0", "sku"], id="sku-65"),
    pytest.param(order_body(items=[item(sku="has space")]), ["items", "0", "sku"], id="sku-space"),
    pytest.param(order_body(items=[item(sku="<script>")]), ["items", "0", "sku"], id="sku-markup"),
    pytest.param(
        order_body(items=[item(sku="-lead")]), ["items", "0", "sku"], id="sku-leading-dash"
    ),
    pytest.param(order_body(items=[item(), item(quantity=2)]), ["items"], id="sku-repeated"),
    pytest.param(order_body(status="delivered"), ["status"], id="client-sets-status"),
    pytest.param(order_body(user_id="user-bob"), ["user_id"], id="client-sets-user"),
    pytest.param(order_body(total_cents=1), ["total_cents"], id="client-sets-total"),
    pytest.param(
        order_body(items=[item(discount=50)]), ["items", "0", "discount"], id="item-unknown-field"
    ),
    pytest.param([order_body()], ["_schema"], id="body-is-a-list"),
]


def error_at(errors: dict[str, Any], path: list[str]) -> Any:
    """The error messages at a path of field names, or fail naming what is there."""
    node: Any = errors
    for name in path:
        assert isinstance(node, dict) and name in node, f"no error at {path}: {errors}"
        node = node[name]
    return node


@pytest.mark.parametrize(("body", "path"), BAD_BODIES)
def test_an_invalid_order_is_422_with_the_field_named(
    app: Flask, client: FlaskClient, alice: Headers, body: Any, path: list[str]
) -> None:
    response = client.post("/api/v1/orders", json=body, headers=alice)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 422 and problem["request_id"]
    assert error_at(problem["errors"], path)
    assert rows(app, Order) == []


def test_the_largest_allowed_order_is_accepted_and_its_total_is_exact(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    add_products(
        app,
        *(
            NewProduct(sku=f"S{i}", name=f"Dear {i}", unit_price_cents=10**9, currency="EUR")
            for i in range(100)
        ),
    )
    items = [item(sku=f"S{i}", quantity=1000) for i in range(100)]
    response = client.post("/api/v1/orders", json=order_body(items=items), headers=alice)
    assert response.status_code == 201
    assert response.get_json()["total_cents"] == 100 * 1000 * 10**9


@pytest.mark.parametrize(
    "raw",
    [
        b'{"currency": "EUR",',
        b"not json",
        b"\xff\xfe",
        b'{"items": [' + b"1" * 5000 + b"]}",
        b"[" * 100_000,
    ],
    ids=["truncated", "not-json", "not-utf8", "5000-digit-number", "deeply-nested"],
)
def test_malformed_json_is_400_problem(client: FlaskClient, alice: Headers, raw: bytes) -> None:
    response = client.post(
        "/api/v1/orders", data=raw, headers={**alice, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_an_oversized_body_is_413_problem(client: FlaskClient, alice: Headers) -> None:
    response = client.post(
        "/api/v1/orders",
        data=b"{" + b" " * (1024 * 1024) + b"}",
        headers={**alice, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 101},
        {"limit": 0},
        {"limit": "ten"},
        {"status": "lost"},
        {"cursor": "definitely-not-a-cursor"},
    ],
    ids=["limit-101", "limit-0", "limit-text", "status-unknown", "cursor-garbage"],
)
def test_a_bad_list_query_is_422_naming_the_parameter(
    client: FlaskClient, alice: Headers, query: dict[str, Any]
) -> None:
    response = client.get("/api/v1/orders", query_string=query, headers=alice)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert set(response.get_json()["errors"]) == set(query)


@pytest.mark.parametrize(
    "status_body",
    [{}, {"status": "teleported"}, {"status": "confirmed", "version": 9}, {"status": 1}],
    ids=["missing", "unknown", "extra-field", "number"],
)
def test_a_bad_status_change_is_422(
    client: FlaskClient, alice: Headers, admin: Headers, status_body: dict[str, Any]
) -> None:
    order = client.post("/api/v1/orders", json=order_body(), headers=alice).get_json()
    response = client.post(f"/api/v1/orders/{order['id']}/status", json=status_body, headers=admin)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {"status": "delivered"}}, 422),
        ({"json": {"user_id": "user-bob", "reason": "changed my mind"}}, 422),
        ({"json": []}, 422),
        ({"data": b"null", "content_type": "application/json"}, 422),
        ({"data": b'{"status": "delivered"}', "content_type": "text/plain"}, 415),
        ({"data": {"status": "delivered"}}, 415),  # a form
    ],
    ids=["status", "unknown-fields", "list", "null", "text-plain", "form"],
)
def test_a_cancel_with_a_body_is_refused_and_changes_nothing(
    app: Flask, client: FlaskClient, alice: Headers, kwargs: dict[str, Any], status: int
) -> None:
    order = client.post("/api/v1/orders", json=order_body(), headers=alice).get_json()
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=alice, **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    [stored] = rows(app, Order)
    assert (stored.status, stored.version) == ("pending", 1)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"json": {}}, {"data": b"", "content_type": "application/json"}],
    ids=["no-body", "empty-object", "empty-json-body"],
)
def test_a_cancel_without_a_body_or_with_an_empty_object_is_accepted(
    client: FlaskClient, alice: Headers, kwargs: dict[str, Any]
) -> None:
    order = client.post("/api/v1/orders", json=order_body(), headers=alice).get_json()
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=alice, **kwargs)
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"


@pytest.mark.parametrize(
    "key", ["k" * 256, "tab\there", "new\x7fline", "caf\u00e9"], ids=["256", "tab", "del", "latin1"]
)
def test_an_unusable_idempotency_key_is_422(
    app: Flask, client: FlaskClient, alice: Headers, key: str
) -> None:
    response = client.post(
        "/api/v1/orders",
        json=order_body(),
        headers={**alice, "Idempotency-Key": key},
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert rows(app, Order) == []
