"""Every list query the API runs is served by an index on a table of realistic size."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from services.orders.models import db
from services.orders.tests.helpers import captured_queries

pytestmark = pytest.mark.integration

Headers = dict[str, str]
USERS = 200
ORDERS = 10_000


@pytest.fixture
def many_orders(app: Flask) -> None:
    """10,000 orders of 200 users in every status, one item each, with fresh statistics.

    Alice has one order in ten (enough for several pages in each status), everyone else a
    handful; the statistics are fresh, as autovacuum keeps them.
    """
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO orders
                    (id, user_id, status, currency, total_cents, version, created_at, updated_at)
                SELECT gen_random_uuid(),
                       CASE WHEN g % 10 = 0 THEN 'user-alice' ELSE 'user-' || g % :users END,
                       (ARRAY['pending', 'confirmed', 'shipped', 'delivered', 'cancelled'])
                           [1 + g / 10 % 5],
                       'EUR', 100, 1,
                       now() - g * interval '1 second', now()
                FROM generate_series(1, :orders) AS g
                """
            ),
            {"users": USERS, "orders": ORDERS},
        )
        conn.execute(
            sa.text(
                "INSERT INTO order_items (order_id, position, sku, quantity, unit_price_cents) "
                "SELECT id, 0, 'SKU-1', 1, 100 FROM orders"
            )
        )
        conn.execute(sa.text("ANALYZE orders"))
        conn.execute(sa.text("ANALYZE order_items"))


def plans_of(app: Flask, queries: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Each query with PostgreSQL's plan of it (for the parameters it ran with)."""
    with app.app_context(), db.engine.connect() as conn:
        return [
            (
                statement,
                "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars()),
            )
            for statement, parameters in queries
        ]


@pytest.mark.parametrize("who", ["alice", "admin"])
@pytest.mark.parametrize("status", [None, "shipped"], ids=["any-status", "one-status"])
@pytest.mark.parametrize("page", ["first", "next"])
def test_each_list_query_uses_an_index_and_reads_no_table_whole(
    app: Flask,
    client: FlaskClient,
    many_orders: None,
    request: pytest.FixtureRequest,
    who: str,
    status: str | None,
    page: str,
) -> None:
    headers: Headers = request.getfixturevalue(who)
    query: dict[str, Any] = {"limit": 20, **({"status": status} if status else {})}
    if page == "next":
        first = client.get("/api/v1/orders", query_string=query, headers=headers).get_json()
        assert first["next_cursor"] is not None
        query["cursor"] = first["next_cursor"]
    with captured_queries(app) as queries:
        response = client.get("/api/v1/orders", query_string=query, headers=headers)
    assert response.status_code == 200
    listed = response.get_json()["items"]
    assert len(listed) == 20 and all(len(o["items"]) == 1 for o in listed)
    assert queries, "the list ran no query"
    # The filters are index conditions: an index on (created_at, id) alone would also avoid
    # a Seq Scan, but by reading and dropping the rows of every other user or status.
    conditions = [c for c in ("user_id" if who == "alice" else None, status and "status") if c]
    for statement, plan in plans_of(app, queries):
        assert "Seq Scan on orders" not in plan, plan
        assert "Seq Scan on order_items" not in plan, plan
        assert "Index" in plan, plan
        if not re.search(r"\bFROM orders\b", statement):
            continue  # the items of the page
        index_conditions = [line for line in plan.splitlines() if "Index Cond:" in line]
        for column in conditions:
            assert any(f"({column})" in line for line in index_conditions), plan


PRODUCTS = 5_000


@pytest.fixture
def many_products(app: Flask) -> None:
    """5,000 products besides CATALOGUE's, one in ten withdrawn, with fresh statistics."""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO products
                    (id, sku, name, unit_price_cents, currency, active, created_at, updated_at)
                SELECT gen_random_uuid(), 'P-' || g, 'Product ' || g, 100 + g, 'EUR',
                       g % 10 <> 0, now() - g * interval '1 second', now()
                FROM generate_series(1, :products) AS g
                """
            ),
            {"products": PRODUCTS},
        )
        conn.execute(sa.text("ANALYZE products"))


@pytest.mark.parametrize("active", ["true", "false"])
@pytest.mark.parametrize("page", ["first", "next"])
def test_the_catalogue_pages_use_an_index(
    app: Flask, client: FlaskClient, many_products: None, active: str, page: str
) -> None:
    query: dict[str, Any] = {"limit": 20, "active": active}
    if page == "next":
        query["cursor"] = client.get("/api/v1/products", query_string=query).json["next_cursor"]
    with captured_queries(app) as queries:
        response = client.get("/api/v1/products", query_string=query)
    assert response.status_code == 200 and len(response.get_json()["items"]) == 20
    [(_statement, plan)] = plans_of(app, queries)
    assert "Seq Scan on products" not in plan, plan
    assert "ix_products_active_created_at_id" in plan, plan


def test_pricing_an_order_looks_its_skus_up_by_index(
    app: Flask, client: FlaskClient, many_products: None, alice: Headers
) -> None:
    body = {
        "currency": "EUR",
        "items": [{"sku": "P-1", "quantity": 1}, {"sku": "P-2", "quantity": 1}],
    }
    with captured_queries(app) as queries:
        response = client.post("/api/v1/orders", json=body, headers=alice)
    assert response.status_code == 201 and response.get_json()["total_cents"] == 101 + 102
    [pricing] = [(s, p) for s, p in queries if re.search(r"\bFROM products\b", s)]
    [(_statement, plan)] = plans_of(app, [pricing])
    assert "Seq Scan on products" not in plan, plan
    assert "uq_products_sku" in plan, plan
