"""Retention: finished deliveries and old notifications are deleted, a batch at a time.

Without these purges `deliveries` (each row keeps the whole rendered mail or webhook body)
and `notifications` grow by every event forever. No use case here commits: the consume
worker's purge loop (shared.worker.batched_purge) commits after each batch, so that one run
never holds a long transaction or a long lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.notifications.models import Delivery, Notification, WebhookAttempt
from shared.db import is_postgresql, rows_matched, utcnow

# A delivery's outcome is final in every state but `pending` (which covers waiting for its
# first attempt, waiting for a retry, and claimed by a worker). Literal SQL, shared with
# the partial index `ix_deliveries_finished_updated`: the planner uses a partial index
# only when the query repeats its predicate, which a bound parameter would not.
FINISHED = "status <> 'pending'"


def _finished_before(cutoff: datetime, now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        sa.text(FINISHED),
        Delivery.updated_at < cutoff,
        # Cancelled while on the wire, it may still turn `sent`: never under a live claim.
        sa.or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
    )


def purge_finished_deliveries(
    session: Session, older_than: timedelta, *, limit: int, now: datetime | None = None
) -> int:
    """Delete at most `limit` deliveries finished longer than `older_than` ago; how many.

    Finished: sent, failed or cancelled, last changed before the cutoff. A pending delivery
    is never deleted, whatever its age. The webhook attempts of the deleted deliveries go
    in the same transaction (the attempt log has no foreign key to cascade). The caller
    commits.
    """
    now = now or utcnow()
    condition = _finished_before(now - older_than, now)
    batch = sa.select(Delivery.id).where(condition).order_by(Delivery.updated_at).limit(limit)
    if is_postgresql(session):
        # A row an operator's `retry` or a user's `recover` holds is left for the next run.
        batch = batch.with_for_update(skip_locked=True)
    deleted = list(
        session.scalars(
            sa.delete(Delivery)
            # The condition again: a row changed since the batch was read is rechecked.
            .where(Delivery.id.in_(batch.scalar_subquery()), condition)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    if deleted:
        session.execute(
            sa.delete(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(deleted))
            .execution_options(synchronize_session=False)
        )
    return len(deleted)


def purge_old_notifications(
    session: Session, older_than: timedelta, *, limit: int, now: datetime | None = None
) -> int:
    """Delete at most `limit` notifications made longer than `older_than` ago; how many.

    Only notifications no delivery refers to any more: the foreign key would cascade to
    a delivery still pending (and to finished ones, leaving their webhook attempts
    behind), so a notification goes once the delivery purge has taken its deliveries.
    The caller commits.
    """
    cutoff = (now or utcnow()) - older_than
    referenced = sa.exists().where(Delivery.notification_id == Notification.id)
    condition = sa.and_(Notification.created_at < cutoff, ~referenced)
    batch = (
        sa.select(Notification.id).where(condition).order_by(Notification.created_at).limit(limit)
    )
    if is_postgresql(session):
        batch = batch.with_for_update(skip_locked=True)
    result = session.execute(
        sa.delete(Notification)
        .where(Notification.id.in_(batch.scalar_subquery()), condition)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)
