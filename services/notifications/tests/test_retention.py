"""Finished deliveries and old notifications are purged past their retentions, in batches."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from services.notifications import retention
from services.notifications.models import (
    Delivery,
    DeliveryStatus,
    Notification,
    WebhookAttempt,
    WebhookEndpoint,
    db,
)
from services.notifications.tests.conftest import purged_in_batches
from services.notifications.worker import delivery_purge, notification_purge

pytestmark = pytest.mark.integration

DAY = 24 * 3600
# Taken when the module is collected, which in a whole run can be half an hour before a test
# here runs: every time below keeps at least hours of margin from its cut-off.
NOW = datetime.now(UTC)


def _notification(made_at: datetime) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        user_id="user-ada",
        event_id=str(uuid.uuid4()),
        event_type="order.created",
        title="Order received",
        body="Your order was received.",
        created_at=made_at,
    )


def _delivery(
    notification: Notification | None,
    status: DeliveryStatus,
    changed_at: datetime,
    *,
    attempts: int = 1,
    next_attempt_at: datetime | None = None,
    claimed_until: datetime | None = None,
    endpoint_id: uuid.UUID | None = None,
) -> Delivery:
    return Delivery(
        id=uuid.uuid4(),
        notification_id=notification.id if notification is not None else None,
        user_id="user-ada",
        channel="webhook" if endpoint_id else "email",
        endpoint_id=endpoint_id,
        payload={"subject": "Order received", "text": "x" * 200, "html": "<p>x</p>"},
        status=status.value,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        claimed_until=claimed_until,
        sent_at=changed_at if status is DeliveryStatus.SENT else None,
        created_at=changed_at - timedelta(minutes=5),
        updated_at=changed_at,
    )


def _attempt(endpoint_id: uuid.UUID, delivery_id: uuid.UUID, made_at: datetime) -> WebhookAttempt:
    return WebhookAttempt(
        id=uuid.uuid4(),
        endpoint_id=endpoint_id,
        delivery_id=delivery_id,
        event_type="order.created",
        attempt=1,
        outcome="failed",
        status_code=503,
        duration_ms=12,
        created_at=made_at,
    )


def _endpoint(session: Session) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        user_id="user-ada",
        url="https://hooks.example.com/in",
        event_types=["order.created"],
        secret="whsec_test",
        created_at=NOW - timedelta(days=400),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def _ids(model: type[Delivery] | type[Notification] | type[WebhookAttempt]) -> set[uuid.UUID]:
    return set(db.session.scalars(sa.select(model.id)))


def test_finished_deliveries_past_the_retention_are_purged_with_their_attempts(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "DELIVERY_RETENTION_SECONDS", 30 * DAY)
    old, young = NOW - timedelta(days=31), NOW - timedelta(days=29)
    with app.app_context():
        session = db.session()
        endpoint = _endpoint(session)
        notification = _notification(NOW - timedelta(days=40))
        session.add(notification)
        purged = [
            _delivery(notification, DeliveryStatus.SENT, old),
            _delivery(notification, DeliveryStatus.FAILED, old, attempts=40),
            _delivery(notification, DeliveryStatus.CANCELLED, old, attempts=0),
            _delivery(notification, DeliveryStatus.FAILED, old, endpoint_id=endpoint.id),
            _delivery(None, DeliveryStatus.SENT, old, endpoint_id=endpoint.id),  # a ping
        ]
        kept = [
            _delivery(notification, DeliveryStatus.SENT, young),
            _delivery(notification, DeliveryStatus.FAILED, young, endpoint_id=endpoint.id),
            # Pending, whatever their age: never tried, waiting for a retry, claimed.
            _delivery(notification, DeliveryStatus.PENDING, old, attempts=0, next_attempt_at=old),
            _delivery(
                notification,
                DeliveryStatus.PENDING,
                old,
                attempts=3,
                next_attempt_at=NOW + timedelta(hours=1),
            ),
            _delivery(
                notification,
                DeliveryStatus.PENDING,
                old,
                attempts=4,
                next_attempt_at=NOW + timedelta(hours=6),
                claimed_until=NOW + timedelta(hours=6),
            ),
            # Cancelled while on the wire: its worker may still record it sent.
            _delivery(
                notification,
                DeliveryStatus.CANCELLED,
                old,
                claimed_until=NOW + timedelta(hours=6),
            ),
        ]
        session.add_all([*purged, *kept])
        session.flush()
        purged_attempts = [_attempt(endpoint.id, d.id, old) for d in purged[3:] for _ in range(2)]
        kept_attempts = [_attempt(endpoint.id, kept[1].id, young)]
        session.add_all([*purged_attempts, *kept_attempts])
        kept_ids = {d.id for d in kept}
        kept_attempt_ids = {a.id for a in kept_attempts}
        notification_id = notification.id
        session.commit()
        engine = db.engine

    purge = delivery_purge(app, sessionmaker(bind=engine), batch_size=2)
    assert purge() == len(purged)
    assert purge() == 0  # nothing left to purge

    with app.app_context():
        assert _ids(Delivery) == kept_ids
        # Nothing dangles: the attempts of purged deliveries went with them.
        assert _ids(WebhookAttempt) == kept_attempt_ids
        assert _ids(Notification) == {notification_id}


def test_the_delivery_purge_deletes_at_most_a_batch_per_transaction(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        session.add_all(
            _delivery(None, DeliveryStatus.SENT, NOW - timedelta(days=40, minutes=n))
            for n in range(7)
        )
        session.commit()
        deleted = purged_in_batches(
            retention.purge_finished_deliveries, session, older_than=timedelta(days=30), limit=3
        )
    assert deleted == [3, 3, 1, 0]


def test_notifications_past_the_retention_are_purged_once_no_delivery_refers_to_them(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "DELIVERY_RETENTION_SECONDS", 30 * DAY)
    monkeypatch.setitem(app.config, "NOTIFICATION_RETENTION_SECONDS", 365 * DAY)
    year_ago = NOW - timedelta(days=366)
    with app.app_context():
        session = db.session()
        bare = [_notification(year_ago - timedelta(minutes=n)) for n in range(5)]
        delivered = _notification(year_ago)  # its sent delivery is past its retention too
        waiting = _notification(year_ago)  # a delivery of it is still pending
        recent = _notification(NOW - timedelta(days=364))
        session.add_all([*bare, delivered, waiting, recent])
        session.flush()
        pending = _delivery(
            waiting, DeliveryStatus.PENDING, year_ago, attempts=2, next_attempt_at=NOW
        )
        session.add_all([_delivery(delivered, DeliveryStatus.SENT, year_ago), pending])
        delivered_id, waiting_id, recent_id, pending_id = (
            delivered.id,
            waiting.id,
            recent.id,
            pending.id,
        )
        session.commit()
        engine = db.engine

    sessions = sessionmaker(bind=engine)
    purge_notifications = notification_purge(app, sessions, batch_size=2)
    assert purge_notifications() == len(bare)
    with app.app_context():
        assert _ids(Notification) == {delivered_id, waiting_id, recent_id}

    # Once the delivery purge has taken its finished delivery, the notification goes too.
    assert delivery_purge(app, sessions)() == 1
    assert purge_notifications() == 1
    assert purge_notifications() == 0
    with app.app_context():
        assert _ids(Notification) == {waiting_id, recent_id}
        assert _ids(Delivery) == {pending_id}


def test_the_notification_purge_deletes_at_most_a_batch_per_transaction(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        session.add_all(_notification(NOW - timedelta(days=400, minutes=n)) for n in range(5))
        session.commit()
        deleted = purged_in_batches(
            retention.purge_old_notifications, session, older_than=timedelta(days=365), limit=2
        )
    assert deleted == [2, 2, 1, 0]


def test_the_purges_read_an_index_range_not_the_whole_table(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        # With sequential scans priced out, a plan without the index would still scan.
        session.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plans = {}
        for name, statement in (
            (
                "deliveries",
                sa.select(Delivery.id)
                .where(retention._finished_before(NOW - timedelta(days=30), NOW))
                .order_by(Delivery.updated_at)
                .limit(1000),
            ),
            (
                "notifications",
                sa.select(Notification.id)
                .where(Notification.created_at < NOW - timedelta(days=365))
                .order_by(Notification.created_at)
                .limit(1000),
            ),
        ):
            compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
            plans[name] = "\n".join(session.scalars(sa.text(f"EXPLAIN {compiled}")))
        session.rollback()
    assert "ix_deliveries_finished_updated" in plans["deliveries"]
    assert "ix_notifications_created_at" in plans["notifications"]


def test_the_purges_run_on_sqlite_too(sqlite_app: Flask) -> None:
    with sqlite_app.app_context():
        session = db.session()
        notification = _notification(NOW - timedelta(days=400))
        session.add(notification)
        session.flush()
        session.add(_delivery(notification, DeliveryStatus.SENT, NOW - timedelta(days=40)))
        session.commit()
        engine = db.engine
    sessions = sessionmaker(bind=engine)
    assert delivery_purge(sqlite_app, sessions)() == 1
    assert notification_purge(sqlite_app, sessions)() == 1
