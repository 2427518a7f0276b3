"""PostgreSQL's plans of the suite's hot queries, on tables of a realistic size.

    python -m bench.explain [--orders 10000] [--outbox 20000]

A throwaway orders database (migrated as the tests make theirs, bench.write_path's
`orders_app`) filled with `--orders` orders of 200 users (one user owns one in ten) and
`--outbox` sent outbox rows plus 50 unsent ones, analysed. Then the statements the API
really runs (captured from the app while it serves them) for GET one order, the first and
the next page of 20 orders of one user, POST an order, and the relay's claim of a batch,
each printed with `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON)`: which index
serves it and how long the server took (a POST's INSERTs are listed, not replayed).
services/orders/tests/test_indexes.py asserts the index use of the list queries; this
prints what the plans are.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import sqlalchemy as sa

from bench.write_path import orders_app
from services.orders.models import Outbox, db
from services.orders.tests.helpers import captured_queries, order_body
from shared.db import utcnow

USERS = 200


def fill(app: Any, *, orders: int, outbox: int, owner: str) -> None:
    """Orders (every tenth the token's user's), their items, sent and unsent outbox rows."""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO orders
                    (id, user_id, status, currency, total_cents, version, created_at, updated_at)
                SELECT gen_random_uuid(),
                       CASE WHEN g % 10 = 0 THEN :owner ELSE 'user-' || g % :users END,
                       (ARRAY['pending', 'confirmed', 'shipped', 'delivered', 'cancelled'])
                           [1 + g / 10 % 5],
                       'EUR', 100, 1, now() - g * interval '1 second', now()
                FROM generate_series(1, :orders) AS g
                """
            ),
            {"owner": owner, "users": USERS, "orders": orders},
        )
        conn.execute(
            sa.text(
                "INSERT INTO order_items (order_id, position, sku, quantity, unit_price_cents) "
                "SELECT id, 0, 'BOOK-1', 1, 100 FROM orders"
            )
        )
        conn.execute(
            sa.text(
                """
                INSERT INTO outbox (event_id, type, payload, created_at, available_at,
                                    attempts, sent_at)
                SELECT gen_random_uuid()::text, 'order.created', '{}',
                       now() - g * interval '1 second', now() - g * interval '1 second', 0,
                       CASE WHEN g <= 50 THEN NULL ELSE now() END
                FROM generate_series(1, :rows) AS g
                """
            ),
            {"rows": outbox + 50},
        )
        for table in ("orders", "order_items", "outbox"):
            conn.execute(sa.text(f"ANALYZE {table}"))


def explain(app: Any, statement: str, parameters: Any) -> str:
    """The plan of one statement as it ran, executed (in a transaction rolled back)."""
    with app.app_context(), db.engine.connect() as conn:
        with conn.begin() as transaction:
            plan = conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {statement}", parameters
            ).scalars()
            text = "\n".join(plan)
            transaction.rollback()
    return text


def main(argv: list[str] | None = None) -> int:
    """Fill, capture the hot statements, print each with its plan."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--outbox", type=int, default=20_000)
    args = parser.parse_args(argv)
    with orders_app() as (app, headers):
        fill(app, orders=args.orders, outbox=args.outbox, owner="user-bench")
        client = app.test_client()
        placed = client.post("/api/v1/orders", json=order_body(), headers=headers).get_json()
        first = client.get("/api/v1/orders?limit=20", headers=headers).get_json()
        requests: list[tuple[str, Any]] = [
            (
                "GET one order",
                lambda: client.get(f"/api/v1/orders/{placed['id']}", headers=headers),
            ),
            (
                "GET the first page of 20",
                lambda: client.get("/api/v1/orders?limit=20", headers=headers),
            ),
            (
                "GET the next page of 20",
                lambda: client.get(
                    f"/api/v1/orders?limit=20&cursor={first['next_cursor']}", headers=headers
                ),
            ),
            (
                "POST an order",
                lambda: client.post("/api/v1/orders", json=order_body(), headers=headers),
            ),
        ]
        for title, call in requests:
            with captured_queries(app) as queries:
                response = call()
            sys.stdout.write(f"## {title} ({response.status_code})\n\n")
            for statement, parameters in queries:
                verb = statement.lstrip().split(None, 1)[0].upper()
                if verb == "INSERT":
                    # Already written by the request: replaying it would hit its own key.
                    sys.stdout.write(_one_line(statement) + "\n(an INSERT: no plan to choose)\n\n")
                    continue
                if verb not in ("SELECT", "UPDATE", "WITH"):
                    continue
                sys.stdout.write(_one_line(statement) + "\n" + explain(app, statement, parameters))
                sys.stdout.write("\n\n")
        claim = (
            sa.select(Outbox.id, Outbox.event_id, Outbox.payload, Outbox.attempts)
            .where(Outbox.sent_at.is_(None), Outbox.available_at <= utcnow())
            .order_by(Outbox.id)
            .limit(500)
            .with_for_update(skip_locked=True)
        )
        with app.app_context():
            compiled = claim.compile(db.engine, compile_kwargs={"literal_binds": True})
        sys.stdout.write("## the relay's claim of a batch (shared.outbox.relay_outbox_once)\n\n")
        sys.stdout.write(_one_line(str(compiled)) + "\n" + explain(app, str(compiled), None) + "\n")
    return 0


def _one_line(statement: str) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= 300 else text[:297] + "..."


if __name__ == "__main__":
    raise SystemExit(main())
