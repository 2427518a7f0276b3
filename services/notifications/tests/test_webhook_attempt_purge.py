"""The webhooks' attempt log is purged past its retention, like the inbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import sessionmaker

from services.notifications import webhooks
from services.notifications.models import WebhookAttempt, db
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import committed, purged_in_batches
from services.notifications.worker import webhook_attempt_purge

pytestmark = pytest.mark.integration

DAY = 24 * 3600


def _attempt(endpoint_id: uuid.UUID, made_at: datetime) -> WebhookAttempt:
    return WebhookAttempt(
        id=uuid.uuid4(),
        endpoint_id=endpoint_id,
        delivery_id=uuid.uuid4(),
        event_type="order.created",
        attempt=1,
        outcome="failed",
        status_code=503,
        duration_ms=12,
        created_at=made_at,
    )


def test_attempts_older_than_the_retention_are_purged_and_recent_ones_kept(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "NOTIFICATIONS_WEBHOOK_ATTEMPT_RETENTION_SECONDS", 7 * DAY)
    now = datetime.now(UTC)
    with app.app_context():
        session = db.session()
        endpoint = committed(
            webhooks.create_webhook,
            session=session,
            user_id="user-ada",
            url="http://127.0.0.1:9/hook",
            event_types=["order.created"],
            description=None,
            guard=TargetGuard(allow_private=True),
            max_per_user=10,
        )
        old = [_attempt(endpoint.id, now - timedelta(days=8, minutes=n)) for n in range(25)]
        recent = [
            _attempt(endpoint.id, now - timedelta(days=6)),
            _attempt(endpoint.id, now - timedelta(minutes=1)),
        ]
        recent_ids = {attempt.id for attempt in recent}
        session.add_all([*old, *recent])
        session.commit()
        engine = db.engine

    purge = webhook_attempt_purge(app, sessionmaker(bind=engine))
    assert purge() == len(old)
    assert purge() == 0  # nothing left to purge

    with app.app_context():
        kept = set(db.session.scalars(sa.select(WebhookAttempt.id)))
    assert kept == recent_ids


def test_the_purge_deletes_in_batches_until_none_is_left(app: Flask) -> None:
    now = datetime.now(UTC)
    with app.app_context():
        session = db.session()
        endpoint = committed(
            webhooks.create_webhook,
            session=session,
            user_id="user-ada",
            url="http://127.0.0.1:9/hook",
            event_types=["order.created"],
            description=None,
            guard=TargetGuard(allow_private=True),
            max_per_user=10,
        )
        session.add_all(_attempt(endpoint.id, now - timedelta(days=40)) for _ in range(7))
        session.commit()
        deleted = purged_in_batches(
            webhooks.purge_webhook_attempts, session, older_than=timedelta(days=30), limit=3
        )
    assert deleted == [3, 3, 1, 0]
