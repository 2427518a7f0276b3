"""The relay's housekeeping purges old inbox rows the way it purges old outbox rows."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import sessionmaker

from services.orders.models import Inbox, db
from services.orders.worker import housekeeping
from shared.db import utcnow
from shared.worker import inbox_purge


def inbox_rows(app: Flask) -> set[str]:
    with app.app_context():
        ids = set(db.session.scalars(sa.select(Inbox.event_id)))
        db.session.rollback()
    return ids


def add_inbox_rows(app: Flask, **ages: timedelta) -> None:
    with app.app_context():
        now = utcnow()
        for event_id, age in ages.items():
            db.session.add(
                Inbox(
                    consumer="orders",
                    event_id=event_id,
                    type="user.registered",
                    received_at=now - age,
                )
            )
        db.session.commit()


def test_housekeeping_purges_inbox_rows_past_the_retention_and_keeps_the_rest(app: Flask):
    retention = timedelta(seconds=app.config["INBOX_RETENTION_SECONDS"])
    add_inbox_rows(
        app,
        old=retention + timedelta(hours=1),
        older=retention * 2,
        recent=timedelta(minutes=5),
        nearly_due=retention - timedelta(hours=1),
    )
    with app.app_context():
        sessions = sessionmaker(bind=db.engine, expire_on_commit=False)

    housekeeping(app, sessions)()

    assert inbox_rows(app) == {"recent", "nearly_due"}


def test_the_inbox_purge_goes_through_every_batch(app: Flask):
    add_inbox_rows(app, **{f"e{n}": timedelta(days=2) for n in range(7)}, fresh=timedelta(0))
    with app.app_context():
        sessions = sessionmaker(bind=db.engine, expire_on_commit=False)

    purged = inbox_purge(sessions, Inbox, timedelta(days=1), batch_size=3)()

    assert purged == 7
    assert inbox_rows(app) == {"fresh"}


def test_the_default_inbox_retention_is_far_beyond_any_redelivery(app: Flask):
    # Redeliveries (retry tiers, a requeue, a consumer killed before its ack) take minutes.
    assert app.config["INBOX_RETENTION_SECONDS"] >= 7 * 24 * 3600
