"""Transactional outbox: events commit with the state change, a relay publishes them later.

A use case calls `record_event` inside its own transaction; nothing touches the broker
there, so an API request never fails (or loses an event) because RabbitMQ is down. The
relay (`run_relay`, one or more per service) claims unsent rows, publishes them with
confirms and marks them sent in the same transaction. A crash between publish and commit
re-publishes those rows later: delivery is at-least-once and consumers dedupe by event id.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import sqlalchemy as sa
from pika.exceptions import AMQPError
from prometheus_client import Gauge, Metric
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from shared.backoff import backoff_ceiling, jittered_delay
from shared.db import JSONType, as_utc, rows_matched, utcnow
from shared.events import Event, InvalidEvent, event_from_body
from shared.faults import RELAY_AFTER_PUBLISH, crash_point
from shared.messaging import OUTBOX_PUBLISH_FAILURES, BrokerUnavailable, Publisher, PublishResult

log = logging.getLogger(__name__)

ROW_BACKOFF_CAP_SECONDS = 300.0
GAUGE_INTERVAL_SECONDS = 5.0
# The relay's first pause once the outbox is empty; it doubles while polls find nothing, up
# to the relay's `idle_seconds`.
MIN_IDLE_SECONDS = 0.005
MAX_ERROR_CHARS = 1000

OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox events not yet published.")
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox event."
)


class OutboxMixin:
    """Columns of the `outbox` table; a service adds `class Outbox(OutboxMixin, db.Model)`."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(
        # SQLite only autoincrements an INTEGER PRIMARY KEY.
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    type: Mapped[str] = mapped_column(sa.String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    available_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(sa.Text)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # The relay's query reads unsent rows in id order; sent rows (almost all of the
        # table) stay out of the index.
        unsent = sa.text("sent_at IS NULL")
        return (
            sa.Index("ix_outbox_unsent", "id", postgresql_where=unsent, sqlite_where=unsent),
            # purge_sent deletes by sent_at: without it each purge scans the whole table.
            sa.Index("ix_outbox_sent_at", "sent_at"),
        )


class BatchPublisher(Protocol):
    """What the relay needs from a publisher (Publisher, or a fake in unit tests)."""

    def publish_batch(self, events: Sequence[Event]) -> PublishResult: ...


class RelayPublisher(BatchPublisher, Protocol):
    """What the relay loop needs besides: idling on the connection, and closing it."""

    def wait(self, seconds: float) -> None: ...

    def close(self) -> None: ...


class IdlePause:
    """How long the relay pauses before its next poll: adaptive, from what the polls found.

    After a poll that published something, none: more may be waiting (a full batch surely
    left some), and an event committed meanwhile should not wait. Once a poll finds nothing,
    `shortest`, doubling with each empty poll up to `longest`. So an event committed just
    after a busy spell leaves within milliseconds, and an idle relay soon polls only every
    `longest` seconds. (Polling, not LISTEN/NOTIFY: a NOTIFY takes a lock that serialises
    the commits of every transaction that sends one.)
    """

    def __init__(self, *, shortest: float, longest: float) -> None:
        self.longest = max(0.0, longest)
        self.shortest = min(max(0.0, shortest), self.longest)
        self._next_idle = self.shortest

    def after(self, sent: int) -> float:
        """The pause after a poll that published `sent` events."""
        if sent > 0:
            self._next_idle = self.shortest
            return 0.0
        pause = self._next_idle
        self._next_idle = min(max(pause * 2, self.shortest), self.longest)
        return pause


def record_event(session: Session, event: Event, *, model: type[OutboxMixin]) -> None:
    """Add the event to the caller's transaction; the caller commits.

    The row is inserted at once (a Core INSERT on the session's connection; no ORM object
    for the flush to track), so it commits or rolls back with the caller's transaction.
    The payload is the event's structured-mode object as published; its data must be JSON
    values already, which the contract catalogue guarantees (it dumps in JSON mode).
    Anything else is refused here, in the use case (by psycopg, or on SQLite the column's
    serialiser), never later in the relay. (It used to be made by a dumps/loads round trip
    of the whole event, which turned dates into strings; no producer needs that since the
    catalogue.)
    """
    now = utcnow()
    session.connection().execute(
        _insert_into(cast(sa.Table, cast(Any, model).__table__)),
        {
            "event_id": event.id,
            "type": event.type,
            "payload": event.to_dict(),
            "created_at": now,
            "available_at": now,
            "attempts": 0,
        },
    )


@functools.cache
def _insert_into(table: sa.Table) -> sa.Insert:
    """The INSERT of one outbox row into `table`, built (and so compiled) once per table."""
    return sa.insert(table)


def _row_backoff(attempts: int) -> timedelta:
    # No jitter: the row's own relay retries it, there is no herd of clients to spread.
    return timedelta(seconds=backoff_ceiling(attempts, base=1.0, cap=ROW_BACKOFF_CAP_SECONDS))


def relay_outbox_once(
    session: Session, model: type[OutboxMixin], publisher: BatchPublisher, *, batch_size: int = 500
) -> int:
    """Publish one batch of due, unsent rows in one transaction; return how many were sent."""
    try:
        now = utcnow()
        rows = session.execute(
            sa.select(model.id, model.event_id, model.payload, model.attempts)
            .where(model.sent_at.is_(None), model.available_at <= now)
            .order_by(model.id)
            .limit(batch_size)
            # Several relays may run: each claims rows the others have not locked.
            # (SQLAlchemy leaves the clause out on SQLite, which has one writer anyway.)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            session.commit()
            return 0

        events: list[Event] = []
        publishable: list[Any] = []
        failed: list[dict[str, Any]] = []
        for row in rows:
            try:
                events.append(event_from_body(row.payload))
                publishable.append(row)
            except InvalidEvent as exc:
                # A row that can never be published must not hold up the others.
                failed.append(_failure(row, f"invalid stored event: {exc}", now))

        results = publisher.publish_batch(events) if events else PublishResult()
        reasons = results.failures
        sent_ids = [row.id for row, ok in zip(publishable, results, strict=True) if ok]
        failed += [
            _failure(row, reasons.get(row.event_id, "not confirmed by the broker"), now)
            for row, ok in zip(publishable, results, strict=True)
            if not ok
        ]

        # The broker has (or refused) the batch and the rows are not marked yet: a crash
        # here must publish them again, never lose them.
        crash_point(RELAY_AFTER_PUBLISH)
        sent_at = utcnow()
        if sent_ids:
            session.execute(
                sa.update(model)
                .where(model.id.in_(sent_ids))
                .values(sent_at=sent_at)
                .execution_options(synchronize_session=False)
            )
        if failed:
            # ORM bulk UPDATE by primary key: one executemany for the whole list.
            session.execute(sa.update(model), failed)
            OUTBOX_PUBLISH_FAILURES.inc(len(failed))
            log.warning(
                "outbox events not published; will retry",
                extra={"count": len(failed), "error": failed[0]["last_error"]},
            )
        session.commit()
        return len(sent_ids)
    except BaseException:
        session.rollback()
        raise


def _failure(row: Any, error: str, now: datetime) -> dict[str, Any]:
    attempts = row.attempts + 1
    return {
        "id": row.id,
        "attempts": attempts,
        "last_error": error[:MAX_ERROR_CHARS],
        "available_at": now + _row_backoff(attempts),
    }


def update_backlog_metrics(session: Session, model: type[OutboxMixin]) -> int:
    """Refresh the backlog gauges from the database; return the backlog size."""
    count, oldest = session.execute(
        sa.select(sa.func.count(model.id), sa.func.min(model.created_at)).where(
            model.sent_at.is_(None)
        )
    ).one()
    session.rollback()  # read-only; end the transaction
    OUTBOX_BACKLOG.set(count)
    age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
    OUTBOX_OLDEST_AGE.set(max(0.0, age))
    return int(count)


def backlog_metrics(session: Session, model: type[OutboxMixin]) -> list[Metric]:
    """The backlog gauges read from the database now, for a web process's /metrics.

    The relay's own gauges vanish with the relay; these go on while any web process of the
    service answers, so a stopped relay still shows as an ageing outbox. Nothing when the
    database does not answer (readiness reports that).
    """
    try:
        count, oldest = session.execute(
            sa.select(sa.func.count(model.id), sa.func.min(model.created_at)).where(
                model.sent_at.is_(None)
            )
        ).one()
    except SQLAlchemyError:
        log.debug("outbox backlog not readable", exc_info=True)
        session.rollback()
        return []
    session.rollback()  # read-only; end the transaction
    age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
    backlog = GaugeMetricFamily("outbox_backlog", "Outbox events not yet published.", value=count)
    oldest_age = GaugeMetricFamily(
        "outbox_oldest_unsent_age_seconds",
        "Age of the oldest unpublished outbox event.",
        value=max(0.0, age),
    )
    return [backlog, oldest_age]


def run_relay(
    session_factory: Callable[[], Session],
    model: type[OutboxMixin],
    amqp_url: str,
    *,
    batch_size: int = 500,
    idle_seconds: float = 0.05,
    min_idle_seconds: float = MIN_IDLE_SECONDS,
    stop_event: threading.Event | None = None,
    max_backoff: float = 5.0,
    publisher: RelayPublisher | None = None,
) -> None:
    """Relay outbox rows to RabbitMQ until stop_event is set, backing off while it fails.

    While the outbox is empty the relay pauses between polls, from `min_idle_seconds`
    growing to `idle_seconds` (see IdlePause); `publisher` replaces the RabbitMQ one (tests).
    """
    stop = stop_event or threading.Event()
    if publisher is None:
        publisher = Publisher(amqp_url)
    idle = IdlePause(shortest=min_idle_seconds, longest=idle_seconds)
    failures = 0
    next_metrics = 0.0
    log.info("outbox relay started", extra={"table": model.__tablename__})
    try:
        while not stop.is_set():
            try:
                with session_factory() as session:
                    if time.monotonic() >= next_metrics:
                        update_backlog_metrics(session, model)
                        next_metrics = time.monotonic() + GAUGE_INTERVAL_SECONDS
                    sent = relay_outbox_once(session, model, publisher, batch_size=batch_size)
            except (BrokerUnavailable, AMQPError, OSError, SQLAlchemyError) as exc:
                # Rows stay in the table untouched (the transaction rolled back): back off.
                if not isinstance(exc, BrokerUnavailable | SQLAlchemyError):
                    publisher.close()  # unexpected broker trouble: start from a new connection
                failures += 1
                delay = jittered_delay(failures, base=0.25, cap=max_backoff)
                log.warning(
                    "outbox relay failed; backing off",
                    extra={"error": str(exc), "retry_in": round(delay, 2)},
                )
                _sleep_unless_stopped(stop, delay)
                continue
            failures = 0
            pause = idle.after(sent)
            if pause > 0 and not stop.is_set():
                # Nothing was due: pause, keeping the broker connection alive.
                publisher.wait(pause)
    finally:
        publisher.close()
        log.info("outbox relay stopped")


def _sleep_unless_stopped(stop: threading.Event, seconds: float) -> None:
    # Polls is_set() (lock-free) rather than stop.wait(): the caller may set the event from
    # a signal handler, which would deadlock if it interrupted us inside wait()'s lock.
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.1, left))


def purge_sent(
    session: Session,
    model: type[OutboxMixin],
    older_than: timedelta,
    *,
    limit: int | None = None,
) -> int:
    """Delete rows sent longer than `older_than` ago (at most `limit`); return how many.

    The caller commits. Finds the rows through the index on sent_at.
    """
    old = (model.sent_at.is_not(None), model.sent_at < utcnow() - older_than)
    statement = sa.delete(model)
    if limit is None:
        statement = statement.where(*old)
    else:
        batch = sa.select(model.id).where(*old).limit(limit).scalar_subquery()
        statement = statement.where(model.id.in_(batch))
    result = session.execute(statement.execution_options(synchronize_session=False))
    return rows_matched(result)
