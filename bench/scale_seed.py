"""Fill the suite's PostgreSQL databases with a year of data, fast (COPY), in realistic shapes.

    python -m bench.scale_seed --orders 1000000      (`make seed-scale SCALE_ORDERS=...`)

The databases are the ones the environment names (AUTH_, ORDERS_, NOTIFICATIONS_DATABASE_URL),
migrated, with the demo catalogue seeded. What goes in, for `--orders N` (1,000,000 is "a year"):

- N / 10 users (at least 50), every one able to log in with `SEED_PASSWORD` (one argon2id
  hash, computed once, shared by all), verified, known to orders (customers) and
  notifications (contacts);
- skewed activity: `HEAVY_USERS` heavy users with 2% of the orders each (at least
  `HEAVY_MIN_ORDERS`, so that a 50th page of 20 exists at every size), the rest spread
  over the others with a Pareto tail (a few hundred orders for the busiest ones, one or two
  for most);
- N orders over the past year with 1-3 catalogue items each, in every state: old orders
  delivered or cancelled, recent ones pending, confirmed or shipped; `version` and
  `updated_at` follow the transitions;
- one notification per order event (order.created and every status change) and per user
  (the welcome), rendered by the service's own templates, each with its email delivery
  (sent, a few failed), most older ones read; these span the whole year (the welcomes of
  the oldest users a little more), as a database that kept every row: the purges of
  finished deliveries (30 days) and old notifications (365 days) cut them to about
  retention x rate;
- inbox and outbox rows as their purges leave them: the orders outbox holds the sent
  events of the last 7 days, the notifications inbox the events of the last 30 days, the
  orders inbox the user events of 30 days, auth's outbox its user events of 7 days,
  idempotency keys of the last day; plus `--overdue` (1 hour by default) of rows just past
  each retention, which the next hour of purge jobs deletes (bench/scale.py measures that).

`--start M` appends: orders M..N join the data of an earlier run (the cost curve grows one
database from 10^4 to 10^6). Rows are generated in Python and written with COPY through
psycopg 3, a table at a time; at 10^6 orders it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench.events import libpq_url
from bench.scale_shapes import (
    CHUNK,
    DAY,
    IDEMPOTENCY_TTL,
    INBOX_RETENTION,
    OUTBOX_RETENTION,
    SEED_PASSWORD,
    YEAR,
    OrderPlan,
    Renderer,
    cloudevent,
    new_id,
    owners,
    plan_order,
    user_email,
    user_id,
    users_for,
)

# The columns each table is written with (the rest take their defaults).
COLUMNS: dict[str, list[str]] = {
    "users": (
        "id email name password_hash role is_active created_at updated_at email_verified_at version"
    ).split(),
    "customers": "user_id email name active updated_at active_version profile_version".split(),
    "contacts": (
        "user_id email name active "
        "email_verified created_at updated_at active_version profile_version"
    ).split(),
    "notifications": (
        "id user_id event_id event_type title body created_at read_at subject_type subject_id"
    ).split(),
    "deliveries": (
        "id notification_id user_id channel payload status "
        "attempts last_error next_attempt_at sent_at created_at updated_at"
    ).split(),
    "outbox": "event_id type payload created_at available_at attempts sent_at".split(),
    "inbox": "consumer event_id type received_at".split(),
    "orders": "id user_id status currency total_cents version created_at updated_at".split(),
    "order_items": "order_id position sku quantity unit_price_cents".split(),
    "idempotency_keys": (
        "user_id key request_hash response_status response_body response_headers created_at"
    ).split(),
}


@dataclass
class Counts:
    """Rows written per table."""

    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, n: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + n


class Copier:
    """COPY rows into one table of a connection, counting them."""

    def __init__(self, conn: psycopg.Connection[Any], counts: Counts) -> None:
        self.conn = conn
        self.counts = counts

    def copy(self, table: str, rows: Iterator[Sequence[Any]]) -> None:
        columns = ", ".join(COLUMNS[table])
        with (
            self.conn.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            n = 0
            for row in rows:
                copy.write_row(row)
                n += 1
        self.counts.add(table, n)


def _argon2_hash() -> str:
    from argon2 import PasswordHasher

    # The library's defaults are the production parameters (AUTH_ARGON2_* unset).
    return PasswordHasher().hash(SEED_PASSWORD)


def seed(
    urls: Mapping[str, str],
    *,
    orders: int,
    start: int = 0,
    overdue: timedelta = timedelta(hours=1),
    seed_value: int = 7,
    now: datetime | None = None,
    log: Any = None,
) -> Counts:
    """Add orders start..orders-1 (and the users, events and rows they imply); rows per table."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed_value * 1_000_003 + start)
    counts = Counts()
    say = log or (lambda message: None)
    auth = psycopg.connect(libpq_url(urls["auth"]))
    orders_db = psycopg.connect(libpq_url(urls["orders"]))
    notes = psycopg.connect(libpq_url(urls["notifications"]))
    try:
        catalogue: dict[str, list[tuple[str, int]]] = {}
        for sku, price, currency in orders_db.execute(
            "SELECT sku, unit_price_cents, currency FROM products WHERE active"
        ):
            catalogue.setdefault(currency, []).append((sku, int(price)))
        if "EUR" not in catalogue:
            raise SystemExit("no EUR products: run `flask --app services.orders seed-products`")
        first_user, last_user = users_for(start) if start else 0, users_for(orders)
        say(f"users {first_user:,}..{last_user:,}")
        _seed_users(auth, orders_db, notes, counts, first_user, last_user, now, overdue, rng)
        who = owners(start, orders, rng)
        renderer = Renderer()
        for offset in range(0, len(who), CHUNK):
            plans = [plan_order(u, now, catalogue, rng) for u in who[offset : offset + CHUNK]]
            _seed_orders(orders_db, notes, counts, plans, renderer, now, overdue, rng)
            orders_db.commit()
            notes.commit()
            say(f"orders {start + offset + len(plans):,} of {orders:,}")
        for conn in (auth, orders_db, notes):
            conn.commit()
            conn.autocommit = True
            conn.execute("ANALYZE")
    finally:
        for conn in (auth, orders_db, notes):
            conn.close()
    return counts


def _seed_users(
    auth: psycopg.Connection[Any],
    orders_db: psycopg.Connection[Any],
    notes: psycopg.Connection[Any],
    counts: Counts,
    first: int,
    last: int,
    now: datetime,
    overdue: timedelta,
    rng: random.Random,
) -> None:
    if first >= last:
        return
    password_hash = _argon2_hash()
    born = {
        i: now - YEAR - timedelta(seconds=rng.random() * 30 * 86400) for i in range(first, last)
    }
    # The newest users joined recently: their events are still in the inboxes and outboxes.
    for i in range(max(first, last - max(1, (last - first) // 50)), last):
        born[i] = now - timedelta(
            seconds=rng.random() * (INBOX_RETENTION + overdue).total_seconds()
        )
    welcome = Renderer().welcome()
    Copier(auth, counts).copy(
        "users",
        (
            (
                user_id(i),
                user_email(i),
                f"Scale User {i}",
                password_hash,
                "user",
                True,
                born[i],
                born[i],
                born[i] + timedelta(minutes=5),
                2,
            )
            for i in range(first, last)
        ),
    )
    Copier(orders_db, counts).copy(
        "customers",
        (
            (user_id(i), user_email(i), f"Scale User {i}", True, born[i], 1, 1)
            for i in range(first, last)
        ),
    )
    Copier(notes, counts).copy(
        "contacts",
        (
            (user_id(i), user_email(i), f"Scale User {i}", True, True, born[i], born[i], 1, 1)
            for i in range(first, last)
        ),
    )
    # The welcome notification and its email, for every user.
    welcomes = [(i, new_id(rng), new_id(rng)) for i in range(first, last)]
    Copier(notes, counts).copy(
        "notifications",
        (
            (
                nid,
                user_id(i),
                eid,
                "user.registered",
                welcome[0],
                welcome[1],
                born[i],
                born[i] + DAY,
                "user",
                user_id(i),
            )
            for i, nid, eid in welcomes
        ),
    )
    Copier(notes, counts).copy(
        "deliveries",
        (
            (
                new_id(rng),
                nid,
                user_id(i),
                "email",
                welcome[2],
                "sent",
                1,
                None,
                None,
                born[i] + timedelta(seconds=1),
                born[i],
                born[i] + timedelta(seconds=1),
            )
            for i, nid, _ in welcomes
        ),
    )
    # User events: auth's outbox keeps 7 days, the consumers' inboxes 30 (plus the overdue).
    user_events = [
        (i, new_id(rng), t, born[i])
        for i in range(first, last)
        for t in ("user.registered", "user.email_verified")
    ]
    Copier(auth, counts).copy(
        "outbox",
        (
            (
                eid,
                t,
                cloudevent("/auth", t, eid, at, user_id(i), {"user_id": user_id(i), "version": 1}),
                at,
                at,
                1,
                at + timedelta(milliseconds=50),
            )
            for i, eid, t, at in user_events
            if now - at < OUTBOX_RETENTION + overdue
        ),
    )
    for conn, consumer in ((orders_db, "orders"), (notes, "notifications")):
        Copier(conn, counts).copy(
            "inbox",
            (
                (consumer, eid, t, at + timedelta(milliseconds=80))
                for _, eid, t, at in user_events
                if now - at < INBOX_RETENTION + overdue
            ),
        )


def _seed_orders(
    orders_db: psycopg.Connection[Any],
    notes: psycopg.Connection[Any],
    counts: Counts,
    plans: Sequence[OrderPlan],
    renderer: Renderer,
    now: datetime,
    overdue: timedelta,
    rng: random.Random,
) -> None:
    Copier(orders_db, counts).copy(
        "orders",
        (
            (
                o.id,
                user_id(o.user),
                o.status,
                o.currency,
                o.total,
                1 + len(o.statuses),
                o.created_at,
                o.statuses[-1][1] if o.statuses else o.created_at,
            )
            for o in plans
        ),
    )
    Copier(orders_db, counts).copy(
        "order_items",
        (
            (o.id, position, sku, quantity, price)
            for o in plans
            for position, (sku, quantity, price) in enumerate(o.items)
        ),
    )
    # Every event of every order: (order, event id, type, time, data, render key).
    events: list[tuple[OrderPlan, str, str, datetime, dict[str, Any], Any]] = []
    for o in plans:
        uid = user_id(o.user)
        items = [{"sku": s, "quantity": q, "unit_price_cents": p} for s, q, p in o.items]
        data = {
            "order_id": o.id,
            "user_id": uid,
            "status": "pending",
            "total_cents": o.total,
            "currency": o.currency,
            "items": items,
            "version": 1,
        }
        events.append(
            (
                o,
                new_id(rng),
                "order.created",
                o.created_at,
                data,
                ("created", o.currency, tuple(o.items)),
            )
        )
        previous = "pending"
        for version, (status, at) in enumerate(o.statuses, start=2):
            change = {
                "order_id": o.id,
                "user_id": uid,
                "from": previous,
                "to": status,
                "version": version,
            }
            events.append((o, new_id(rng), "order.status_changed", at, change, (previous, status)))
            previous = status
    Copier(orders_db, counts).copy(
        "outbox",
        (
            (
                eid,
                t,
                cloudevent("/orders", t, eid, at, o.id, data),
                at,
                at,
                1,
                at + timedelta(milliseconds=40),
            )
            for o, eid, t, at, data, _ in events
            if now - at < OUTBOX_RETENTION + overdue
        ),
    )
    Copier(notes, counts).copy(
        "inbox",
        (
            ("notifications", eid, t, at + timedelta(milliseconds=80))
            for _, eid, t, at, _, _ in events
            if now - at < INBOX_RETENTION + overdue
        ),
    )
    rendered = []
    for o, eid, t, at, data, key in events:
        title, body, payload = renderer.order(t, data, key)
        read = (
            at + timedelta(hours=rng.uniform(1, 72))
            if now - at > 7 * DAY and rng.random() < 0.7
            else None
        )
        rendered.append(
            (new_id(rng), o, eid, t, at + timedelta(milliseconds=100), title, body, payload, read)
        )
    Copier(notes, counts).copy(
        "notifications",
        (
            (nid, user_id(o.user), eid, t, title, body, at, read, "order", o.id)
            for nid, o, eid, t, at, title, body, _, read in rendered
        ),
    )
    Copier(notes, counts).copy(
        "deliveries",
        (
            _delivery(nid, user_id(o.user), payload, at, rng)
            for nid, o, _, _, at, _, _, payload, _ in rendered
        ),
    )
    # Idempotency keys: a third of the orders of the last day (+ overdue) were sent with one.
    Copier(orders_db, counts).copy(
        "idempotency_keys",
        (
            (
                user_id(o.user),
                new_id(rng),
                new_id(rng).replace("-", "") * 2,
                201,
                json.dumps({"id": o.id, "status": "pending", "total_cents": o.total}),
                json.dumps({"Location": f"/api/v1/orders/{o.id}"}),
                o.created_at,
            )
            for o in plans
            if now - o.created_at < IDEMPOTENCY_TTL + overdue and rng.random() < 1 / 3
        ),
    )


def _delivery(
    nid: str, uid: str, payload: str, at: datetime, rng: random.Random
) -> tuple[Any, ...]:
    sent = at + timedelta(seconds=rng.uniform(0.2, 3))
    if rng.random() < 0.005:
        return (
            new_id(rng),
            nid,
            uid,
            "email",
            payload,
            "failed",
            5,
            "550 mailbox unavailable",
            None,
            None,
            at,
            sent,
        )
    return (new_id(rng), nid, uid, "email", payload, "sent", 1, None, None, sent, at, sent)


def main(argv: Sequence[str] | None = None) -> int:
    """Seed the databases the environment names."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale_seed", description=__doc__)
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in total")
    parser.add_argument("--start", type=int, default=0, help="orders already seeded")
    parser.add_argument("--overdue-minutes", type=float, default=60.0)
    args = parser.parse_args(argv)
    urls = {}
    for service in ("auth", "orders", "notifications"):
        url = os.environ.get(f"{service.upper()}_DATABASE_URL", "")
        if not url.startswith("postgresql"):
            raise SystemExit(f"{service.upper()}_DATABASE_URL must name a migrated PostgreSQL db")
        urls[service] = url
    started = time.monotonic()
    counts = seed(
        urls,
        orders=args.orders,
        start=args.start,
        overdue=timedelta(minutes=args.overdue_minutes),
        log=lambda m: sys.stderr.write(f"[seed {time.monotonic() - started:6.1f}s] {m}\n"),
    )
    for table, n in sorted(counts.rows.items()):
        sys.stdout.write(f"{table:20} {n:>12,}\n")
    sys.stdout.write(f"seeded in {time.monotonic() - started:.1f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
