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
