"""The per-user webhook limit holds under concurrent requests (PostgreSQL) and on SQLite."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import sessionmaker

from services.notifications import webhooks
from services.notifications.models import WebhookEndpoint, db
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import committed
from shared.errors import ConflictError

ADA = "user-ada"
LIMIT = 3


def _create(session, user_id: str = ADA) -> None:
    committed(
        webhooks.create_webhook,
        session=session,
        user_id=user_id,
        url="http://127.0.0.1:9/hook",
        event_types=["order.created"],
        description=None,
        guard=TargetGuard(allow_private=True),
        max_per_user=LIMIT,
    )


def _count(app: Flask, user_id: str = ADA) -> int:
    with app.app_context():
        return int(
            db.session.scalar(sa.select(sa.func.count()).where(WebhookEndpoint.user_id == user_id))
        )


def _concurrent_creates(app: Flask, requests: int) -> list[str]:
    """`requests` creations for one user at the same moment, each in its own session."""
    with app.app_context():
        session_factory = sessionmaker(bind=db.engine)
    start = threading.Barrier(requests)
    outcomes: list[str] = []

    def create() -> None:
        session = session_factory()
        try:
            start.wait()
            _create(session)
            outcomes.append("created")
        except ConflictError:
            outcomes.append("conflict")
        finally:
            session.close()

    threads = [threading.Thread(target=create) for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


@pytest.mark.integration
def test_concurrent_creates_on_postgresql_never_exceed_the_limit(app: Flask) -> None:
    outcomes = _concurrent_creates(app, 12)

    assert outcomes == ["conflict"] * (12 - LIMIT) + ["created"] * LIMIT
    assert _count(app) == LIMIT


@pytest.mark.integration
def test_the_limit_is_per_user(app: Flask) -> None:
    with app.app_context():
        for _ in range(LIMIT):
            _create(db.session(), "user-bob")
        _create(db.session(), ADA)
    assert (_count(app, "user-bob"), _count(app, ADA)) == (LIMIT, 1)


def test_concurrent_creates_on_sqlite_never_exceed_the_limit(sqlite_app: Flask) -> None:
    outcomes = _concurrent_creates(sqlite_app, 6)

    assert outcomes == ["conflict"] * (6 - LIMIT) + ["created"] * LIMIT
    assert _count(sqlite_app) == LIMIT
