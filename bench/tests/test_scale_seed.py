"""The scale generator at a tiny size (3,000 orders, then 1,000 more), on the real PostgreSQL:
the shapes it promises (skew, every state, consistent rows, retention windows, logins)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from bench import scale_shapes as shapes
from bench.events import libpq_url
from bench.scale_seed import seed
from services.auth.models import AuthBase
from services.notifications.models import NotificationsBase
from services.orders.cli import DEMO_PRODUCTS
from services.orders.models import OrdersBase
from tests import support

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    created = {}
    try:
        for service, base in (
            ("auth", AuthBase),
            ("orders", OrdersBase),
            ("notifications", NotificationsBase),
        ):
            created[service] = support.create_database(f"scale_seed_{service}")
            engine = sa.create_engine(created[service])
            base.metadata.create_all(engine)
            engine.dispose()
        with psycopg.connect(libpq_url(created["orders"]), autocommit=True) as conn:
            for p in DEMO_PRODUCTS:
                conn.execute(
                    "INSERT INTO products (id, sku, name, unit_price_cents, currency, active,"
                    " created_at, updated_at) VALUES (gen_random_uuid(), %s, %s, %s, %s, true,"
                    " now(), now())",
                    (p.sku, p.name, p.unit_price_cents, p.currency),
                )
        seed(created, orders=3_000, now=NOW)
        yield created
    finally:
        for url in created.values():
            support.drop_database(url)


def query(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(libpq_url(url)) as conn:
        return conn.execute(sql, args).fetchall()


def test_orders_belong_to_known_users_with_skewed_activity(urls: dict[str, str]) -> None:
    assert query(urls["auth"], "SELECT count(*) FROM users") == [(300,)]
    assert query(urls["orders"], "SELECT count(*) FROM orders") == [(3_000,)]
    # Every owner is a user that orders and notifications know.
    assert query(
        urls["orders"],
        "SELECT count(*) FROM orders o LEFT JOIN customers c USING (user_id)"
        " WHERE c.user_id IS NULL",
    ) == [(0,)]
    per_user = [
        int(str(n))
        for (n,) in query(
            urls["orders"], "SELECT count(*) FROM orders GROUP BY user_id ORDER BY 1 DESC"
        )
    ]
    heavy = shapes.heavy_orders(3_000)
    assert per_user[: shapes.HEAVY_USERS] == [heavy] * shapes.HEAVY_USERS
    assert sorted(per_user)[len(per_user) // 2] <= 5  # most users order a few times


def test_orders_are_in_every_state_and_consistent(urls: dict[str, str]) -> None:
    statuses = {
        str(s): int(str(n))
        for s, n in query(urls["orders"], "SELECT status, count(*) FROM orders GROUP BY 1")
    }
    assert set(statuses) == {"pending", "confirmed", "shipped", "delivered", "cancelled"}
    # Old orders are finished; pending ones are recent.
    assert query(
        urls["orders"],
        "SELECT count(*) FROM orders WHERE status = 'pending' AND created_at < %s",
        NOW - timedelta(days=3),
    ) == [(0,)]
    assert query(
        urls["orders"],
        "SELECT count(*) FROM orders o WHERE total_cents <> (SELECT sum(quantity *"
        " unit_price_cents) FROM order_items i WHERE i.order_id = o.id)"
        " OR NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)",
    ) == [(0,)]


def test_every_event_has_its_notification_and_mail(urls: dict[str, str]) -> None:
    # One per order event (created + every transition: version - 1) and one welcome per user.
    [(events,)] = query(urls["orders"], "SELECT sum(version) FROM orders")
    assert query(urls["notifications"], "SELECT count(*) FROM notifications") == [
        (int(str(events)) + 300,)
    ]
    assert query(
        urls["notifications"],
        "SELECT count(*) FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id"
        " WHERE d.id IS NULL",
    ) == [(0,)]
    [(title, payload)] = query(
        urls["notifications"],
        "SELECT title, payload FROM notifications n JOIN deliveries d ON d.notification_id = n.id"
        " WHERE subject_type = 'order' ORDER BY n.created_at LIMIT 1",
    )
    assert isinstance(payload, dict)
    assert payload["subject"] == title and "<html" in str(payload["html"]).lower()


def test_inboxes_and_outboxes_hold_what_retention_leaves(urls: dict[str, str]) -> None:
    hour = timedelta(hours=1)
    for url, table, column, window in (
        (urls["orders"], "outbox", "created_at", shapes.OUTBOX_RETENTION),
        (urls["auth"], "outbox", "created_at", shapes.OUTBOX_RETENTION),
        (urls["notifications"], "inbox", "received_at", shapes.INBOX_RETENTION),
        (urls["orders"], "idempotency_keys", "created_at", shapes.IDEMPOTENCY_TTL),
    ):
        [(count, oldest)] = query(url, f"SELECT count(*), min({column}) FROM {table}")
        assert int(str(count)) > 0, table
        assert isinstance(oldest, datetime)
        assert oldest >= NOW - window - hour, table
    assert query(urls["orders"], "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]


def test_deliveries_and_notifications_span_the_year_past_their_retentions(
    urls: dict[str, str],
) -> None:
    url = urls["notifications"]
    delivery_cutoff = NOW - shapes.DELIVERY_RETENTION
    [(total, old, young, pending)] = query(
        url,
        "SELECT count(*), count(*) FILTER (WHERE updated_at < %s),"
        " count(*) FILTER (WHERE updated_at >= %s), count(*) FILTER (WHERE status = 'pending')"
        " FROM deliveries",
        delivery_cutoff,
        delivery_cutoff,
    )
    # Finished mail of the whole year: most of it past the delivery retention.
    assert pending == 0
    assert 0 < young < old
    assert old > 0.8 * int(total)  # type: ignore[call-overload]
    [(past,)] = query(
        url,
        "SELECT count(*) FROM notifications WHERE created_at < %s",
        NOW - shapes.NOTIFICATION_RETENTION,
    )
    assert past > 0  # the welcomes of users who joined over a year ago


def test_seeded_users_can_log_in_with_the_seed_password(urls: dict[str, str]) -> None:
    [(password_hash,)] = query(
        urls["auth"], "SELECT password_hash FROM users WHERE email = %s", shapes.user_email(7)
    )
    assert PasswordHasher().verify(str(password_hash), shapes.SEED_PASSWORD)


def test_growing_appends_orders_and_users(urls: dict[str, str]) -> None:
    seed(urls, orders=4_000, start=3_000, now=NOW)
    assert query(urls["orders"], "SELECT count(*) FROM orders") == [(4_000,)]
    assert query(urls["auth"], "SELECT count(*) FROM users") == [(400,)]
    heavy = query(
        urls["orders"],
        "SELECT count(*) FROM orders WHERE user_id = %s",
        shapes.user_id(0),
    )
    assert heavy == [(shapes.heavy_orders(4_000),)]
