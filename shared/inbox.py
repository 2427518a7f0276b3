"""Idempotent consumers: remember (consumer, event id) in the same transaction as the effect.

The broker delivers at least once (a relay may re-publish, a consumer may crash before its
ack). Inserting the inbox row and applying the event in one transaction turns that into
exactly-once effect: a duplicate finds the row already there and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from shared import contracts
from shared.context import correlation
from shared.contracts.handlers import BatchHandler, Handler, Handlers
from shared.db import insert_missing, rows_matched, utcnow
from shared.events import Event
from shared.faults import CONSUMER_AFTER_COMMIT, crash_point
from shared.uow import unit_of_work

if TYPE_CHECKING:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

log = logging.getLogger(__name__)


class InboxMixin:
    """Columns of the `inbox` table; a service adds `class Inbox(InboxMixin, db.Model)`."""

    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(255))
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # purge_handled deletes by received_at: without it each purge scans the whole table.
        return (sa.Index("ix_inbox_received_at", "received_at"),)


def _claim(session: Session, model: type[InboxMixin], values: dict[str, Any]) -> bool:
    """Insert the inbox row unless it exists; True when this call inserted it."""
    return bool(_insert_new(session, model, [values]))


def handle_once(
    session: Session,
    model: type[InboxMixin],
    consumer: str,
    event: Event,
    apply: Callable[[], None],
) -> bool:
    """Record the event for this consumer and apply() it, unless already done; caller commits."""
    values = {
        "consumer": consumer,
        "event_id": event.id,
        "type": event.type,
        "received_at": utcnow(),
    }
    if not _claim(session, model, values):
        log.info(
            "duplicate event ignored",
            extra={"consumer": consumer, "event_id": event.id, "event_type": event.type},
        )
        return False
    apply()
    return True


def _handled_data(event: Event, consumer: str, handlers: Mapping[str, Any]) -> Any | None:
    """The event's typed data when `consumer` handles it; None (logged) to acknowledge it.

    InvalidEvent when the catalogue refuses the event: parsed before the handler is looked
    up, so a type or version nobody defined is dead-lettered, not dropped.
    """
    data = contracts.parse_for(event, consumer)
    if event.type not in handlers or data is None:
        log.info(
            "event type or version not handled here; acknowledged",
            extra={
                "consumer": consumer,
                "event_id": event.id,
                "event_type": event.type,
                "dataschema": event.dataschema,
            },
        )
        return None
    return data


def inbox_handler(
    app: Flask,
    db: SQLAlchemy,
    model: type[InboxMixin],
    consumer: str,
    handlers: Mapping[str, Callable[[Session, Event, Any], None]],
) -> Callable[[Event], None]:
    """The Consumer handler: per event, inbox row + service handler in one committed transaction.

    The event's data is parsed by the contract catalogue first, and the handler gets it
    typed: an event the catalogue refuses raises InvalidEvent before any database work,
    and the consumer dead-letters it at once. A valid type without a handler here, or a
    version this consumer is not declared for (see shared.contracts), is acknowledged and
    dropped.
    """

    def handle(event: Event) -> None:
        data = _handled_data(event, consumer, handlers)
        if data is None:
            return
        handler = handlers[event.type]
        # The inbox handler is the entry point of an event: it owns the transaction, and the
        # use cases the handler calls add to it without committing. On any error nothing of
        # this attempt stays behind, and the consumer retries the event.
        with app.app_context(), unit_of_work(db.session()) as session:
            handle_once(session, model, consumer, event, lambda: handler(session, event, data))
        # Committed, not yet acknowledged: a crash here has the event redelivered, and the
        # inbox row makes the second handling a no-op.
        crash_point(CONSUMER_AFTER_COMMIT)

    return handle


def _claim_many(
    session: Session, model: type[InboxMixin], consumer: str, events: Sequence[Event]
) -> set[str]:
    """Insert the inbox rows of `events` that do not exist yet; return the ids inserted."""
    now = utcnow()
    rows = [
        {"consumer": consumer, "event_id": event.id, "type": event.type, "received_at": now}
        for event in events
    ]
    return _insert_new(session, model, rows)


def _insert_new(session: Session, model: type[InboxMixin], rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows whose (consumer, event id) is new; return the event ids inserted.

    On PostgreSQL a concurrent duplicate waits for the first transaction and then inserts
    nothing, so two workers cannot both apply an event. A row already there (or twice in
    `rows`) inserts nothing and returns nothing: only the events seen for the first time
    come back.
    """
    stmt = insert_missing(session, model, rows, key=("consumer", "event_id")).returning(
        model.event_id
    )
    return set(session.scalars(stmt))


def claim_batch(
    session: Session, model: type[InboxMixin], consumer: str, events: Sequence[Event]
) -> list[Event]:
    """Record the events for this consumer; the ones not seen before, in order; caller commits.

    One multi-row INSERT for the whole batch. A duplicate, in the inbox or earlier in the
    batch, is logged and left out.
    """
    fresh = _claim_many(session, model, consumer, events)
    new: list[Event] = []
    for event in events:
        if event.id not in fresh:
            log.info(
                "duplicate event ignored",
                extra={"consumer": consumer, "event_id": event.id, "event_type": event.type},
            )
            continue
        fresh.discard(event.id)  # the same id later in the batch is a duplicate
        new.append(event)
    return new


def handle_batch_once(
    session: Session,
    model: type[InboxMixin],
    consumer: str,
    events: Sequence[Event],
    apply: Callable[[Event], None],
) -> int:
    """Record the events for this consumer and apply() each one not done before; caller commits.

    Returns how many were applied; a duplicate, in the inbox or earlier in the batch, is not.
    """
    fresh = claim_batch(session, model, consumer, events)
    for event in fresh:
        with correlation(event.requestid, event.traceparent):
            apply(event)
    return len(fresh)


def _apply_in_runs(
    session: Session,
    events: Sequence[Event],
    parsed: Mapping[str, Any],
    handlers: Mapping[str, Handler],
    batch_handlers: Mapping[str, BatchHandler],
) -> None:
    """Apply `events` in their order: each run of consecutive events whose type has the same
    batch form in one call of it, every other event through its per-event handler."""
    run: list[tuple[Event, Any]] = []
    run_handler: BatchHandler | None = None
    for event in [*events, None]:
        batch_handler = batch_handlers.get(event.type) if event is not None else None
        if run_handler is not None and run and batch_handler is not run_handler:
            run_handler(session, run)
            run = []
        if event is None:
            break
        if batch_handler is None:
            with correlation(event.requestid, event.traceparent):
                handlers[event.type](session, event, parsed[event.id])
            continue
        run_handler = batch_handler
        run.append((event, parsed[event.id]))


def inbox_batch_handler(
    app: Flask,
    db: SQLAlchemy,
    model: type[InboxMixin],
    consumer: str,
    handlers: Mapping[str, Handler],
) -> Callable[[Sequence[Event]], None]:
    """The Consumer's batch handler: inbox rows + service handlers of a batch in one transaction.

    The inbox rows are claimed with one statement; runs of consecutive events whose type
    has a batch form (`Handlers.on_batch`) go to it in one call, the others to their
    per-event handler, in the order of the batch. Any error, an event the catalogue refuses
    included, rolls the whole batch back; the consumer then handles its events one by one
    (through `inbox_handler`, per-event handlers only), so one bad event cannot fail its
    neighbours.
    """
    batch_handlers = handlers.batches if isinstance(handlers, Handlers) else {}

    def handle(events: Sequence[Event]) -> None:
        known: list[Event] = []
        parsed: dict[str, Any] = {}
        for event in events:
            data = _handled_data(event, consumer, handlers)
            if data is None:
                continue
            known.append(event)
            parsed[event.id] = data
        if not known:
            return
        with app.app_context(), unit_of_work(db.session()) as session:
            fresh = claim_batch(session, model, consumer, known)
            _apply_in_runs(session, fresh, parsed, handlers, batch_handlers)
        crash_point(CONSUMER_AFTER_COMMIT)

    return handle


def purge_handled(
    session: Session, model: type[InboxMixin], older_than: timedelta, *, limit: int
) -> int:
    """Delete at most `limit` inbox rows received longer than `older_than` ago; how many.

    An inbox row only has to outlive every redelivery of its event (retries, a requeue, a
    consumer killed before its ack), which takes minutes: the retention is days. The caller
    commits.
    """
    batch = (
        sa.select(model.consumer, model.event_id)
        .where(model.received_at < utcnow() - older_than)
        .limit(limit)
    )
    statement = sa.delete(model).where(sa.tuple_(model.consumer, model.event_id).in_(batch))
    result = session.execute(statement.execution_options(synchronize_session=False))
    return rows_matched(result)
