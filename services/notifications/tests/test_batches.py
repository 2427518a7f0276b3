"""The consumer's batch path (inbox_batch_handler, order events written per batch) leaves
exactly the rows the one-by-one path leaves, in a fixed number of statements per batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from services.notifications import webhooks
from services.notifications.handlers import CONSUMER, HANDLERS
from services.notifications.models import Delivery, Inbox, Notification, db
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import (
    committed,
    order_created,
    order_status_changed,
    truncate,
    user_deactivated,
    user_email_verified,
    user_registered,
)
from shared.events import Event
from shared.inbox import inbox_batch_handler, inbox_handler
from tests.support import counting_statements

pytestmark = pytest.mark.integration


def _add_webhook(app: Flask, user_id: str, event_types: list[str]) -> None:
    with app.app_context():
        committed(
            webhooks.create_webhook,
            session=db.session(),
            user_id=user_id,
            url="http://127.0.0.1:9/hook",
            event_types=event_types,
            description=None,
            guard=TargetGuard(allow_private=True),
            max_per_user=10,
        )


def _state(app: Flask) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every notification and delivery, without the ids and times that differ per run."""
    with app.app_context():
        notifications = sorted(
            (n.user_id, n.event_id, n.event_type, n.title, n.body, n.subject_type, n.subject_id)
            for n in db.session.scalars(sa.select(Notification))
        )
        deliveries = sorted(
            (
                d.user_id,
                event_id,
                d.channel,
                d.status,
                d.endpoint_id is not None,
                sorted(d.payload.items()),
                d.attempts,
                d.next_attempt_at is not None,
            )
            for d, event_id in db.session.execute(
                sa.select(Delivery, Notification.event_id).join(
                    Notification, Delivery.notification_id == Notification.id
                )
            )
        )
        db.session.remove()
    return notifications, deliveries


# Known users: Ada verified (with a webhook for new orders), Bob unverified, Carol verified
# but deactivated; Dan is unknown.
USERS = [
    user_registered("user-ada", "ada@example.com", "Ada"),
    user_email_verified("user-ada"),
    user_registered("user-bob", "bob@example.com", "Bob"),
    user_registered("user-carol", "carol@example.com", "Carol"),
    user_email_verified("user-carol"),
    user_deactivated("user-carol", version=3),
]


def _apply(app: Flask, events: Sequence[Event], *, batch: bool) -> None:
    one = inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
    for event in USERS:
        one(event)
    _add_webhook(app, "user-ada", ["order.created"])
    one(events[0])  # already handled when the batch comes
    if batch:
        inbox_batch_handler(app, db, Inbox, CONSUMER, HANDLERS)(events)
    else:
        for event in events:
            one(event)


def test_a_mixed_batch_leaves_the_rows_of_handling_its_events_one_by_one(app: Flask) -> None:
    created = order_created("user-ada", "order-1")
    events = [
        created,  # handled before: a duplicate
        order_status_changed("user-ada", "order-1", "pending", "paid"),
        order_created("user-ada"),
        order_created("user-bob"),
        order_created("user-carol"),
        order_created("user-dan"),
        # A user event amid the order events: they apply in the batch's order, so Eve's
        # order after her registration greets her by name, and her unverified address
        # gets no mail until she verifies it (which mails the held welcome).
        user_registered("user-eve", "eve@example.com", "Eve"),
        order_created("user-eve"),
        user_email_verified("user-eve"),
        order_created("user-eve"),
    ]
    events.append(events[2])  # the same event twice in one batch
    _apply(app, events, batch=True)
    in_a_batch = _state(app)
    truncate(app)
    _apply(app, events, batch=False)
    one_by_one = _state(app)

    assert in_a_batch == one_by_one
    notifications, deliveries = in_a_batch
    # Three welcomes, the order handled before, then the batch's (Eve's welcome included;
    # user.email_verified makes none, duplicates none).
    assert len(notifications) == 3 + 1 + 8
    assert sum(1 for n in notifications if n[1] == created.id) == 1
    eves_orders = [events[7].id, events[9].id]
    eve_mails = {d[1]: dict(d[5]) for d in deliveries if d[0] == "user-eve" and d[2] == "email"}
    assert eves_orders[0] not in eve_mails  # her address was not verified yet
    assert eve_mails[eves_orders[1]]["text"].startswith("Hello Eve,")
    channels = {(d[0], d[2]) for d in deliveries}
    assert ("user-ada", "webhook") in channels  # the endpoint's order.created
    assert not any(d[0] == "user-carol" and d[3] == "pending" for d in deliveries)


def test_a_batch_of_order_events_takes_a_fixed_number_of_statements(app: Flask) -> None:
    one = inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
    one(user_registered("user-ada"))
    one(user_email_verified("user-ada"))
    _add_webhook(app, "user-ada", ["order.created"])
    handle = inbox_batch_handler(app, db, Inbox, CONSUMER, HANDLERS)
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        handle([order_created("user-ada") for _ in range(100)])
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    # The inbox claim, the contacts, the endpoints, the notifications, the deliveries:
    # one each for the whole batch, not one (or four) per event.
    assert len(statements) <= 6, statements
    with app.app_context():
        kinds = db.session.execute(
            sa.select(Delivery.channel, sa.func.count()).group_by(Delivery.channel)
        ).all()
        db.session.remove()
    assert dict(kinds) == {"email": 101, "webhook": 100}  # the welcome mail and 100 of each


def test_an_event_handled_alone_writes_its_rows_without_reading_them_back(app: Flask) -> None:
    """The one-by-one path (user events, and a batch that failed) takes the batch path's
    statements for a batch of one: nothing it has just written is selected again."""
    one = inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
    one(user_registered("user-ada"))
    one(user_email_verified("user-ada"))
    with app.app_context():
        engine = db.engine

    with counting_statements(engine) as statements:
        one(order_created("user-ada"))

    # The inbox row, the contact, the endpoints, the notification, its delivery; one commit.
    assert statements == {"INSERT": 3, "SELECT": 2, "COMMIT": 1}, statements
