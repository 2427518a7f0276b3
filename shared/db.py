"""Database helpers shared by every service: naming convention, portable types, clock.

Each service declares its own `DeclarativeBase` with `NAMING_CONVENTION`: a base shared
between services would share one MetaData, and two services' `outbox` tables could then
not be imported into one process (the test run).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

M = TypeVar("M")

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite for `make run`.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now in UTC; the only clock the suite uses for stored timestamps."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; treat them as the UTC they were written in."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the usual way (`postgresql://`, `postgres://`)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# A frozen server (SIGSTOP, a VM paused, a dead NAT entry) refuses nothing: its kernel keeps
# acknowledging, so without deadlines on our side a request would wait for it forever.
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 15.0
# How long past the server's own statement_timeout we wait before giving up on the server.
STATEMENT_DEADLINE_GRACE_SECONDS = 2.0


def engine_options(
    url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Engine options that suit the backend: connect and statement timeouts for servers
    (the ping on checkout is `guard_engine`'s), WAL + busy timeout for SQLite."""
    if url.startswith("sqlite"):
        # Several processes (service, relay, worker) share one SQLite file under `make run`.
        return {"connect_args": {"timeout": 30}}
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
    if statement_timeout > 0:
        connect_args["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
    return {
        # SQLAlchemy's own pre-ping cannot be bounded in time; guard_engine pings instead.
        "pool_pre_ping": False,
        "pool_size": 10,
        "max_overflow": 10,
        "pool_recycle": 1800,
        # Waiting for a free pooled connection is bounded like a new connection is.
        "pool_timeout": connect_timeout,
        "connect_args": connect_args,
    }


def config_engine_options(url: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """`engine_options` with the timeouts of an app's config."""
    return engine_options(
        url,
        connect_timeout=float(
            config.get("DATABASE_CONNECT_TIMEOUT_SECONDS", DEFAULT_CONNECT_TIMEOUT_SECONDS)
        ),
        statement_timeout=float(
            config.get("DATABASE_STATEMENT_TIMEOUT_SECONDS", DEFAULT_STATEMENT_TIMEOUT_SECONDS)
        ),
    )


_WATCHDOG_START = threading.Lock()


class StatementWatchdog:
    """Shuts the socket of a connection whose statement outlived its deadline.

    PostgreSQL's statement_timeout is enforced by the server, so a server that stopped
    answering never enforces it, and psycopg has no client-side timeout for a query. Shutting
    the socket down makes the blocked read fail at once: the driver reports a broken
    connection, SQLAlchemy invalidates it, and the request answers 503. One thread per
    process serves every armed connection; it starts on first use (after a fork).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._pid = -1
        self._condition = threading.Condition()
        self._armed: dict[int, tuple[float, int]] = {}
        self._wake_at = math.inf  # when the watcher wakes next by itself

    def arm(self, dbapi_connection: Any, seconds: float | None = None) -> None:
        """Start the clock for the statement `dbapi_connection` is about to run."""
        deadline = time.monotonic() + (self.seconds if seconds is None else seconds)
        self._ensure_thread()
        with self._condition:
            self._armed[id(dbapi_connection)] = (deadline, dbapi_connection.fileno())
            # Wake the watcher only when it would sleep past this deadline: deadlines are
            # mostly later than the ones it already waits for, and a wake-up per statement
            # would cost every query a thread switch.
            if deadline < self._wake_at:
                self._wake_at = deadline
                self._condition.notify()

    def disarm(self, dbapi_connection: Any) -> None:
        """The statement finished (or failed); its connection's socket is left alone."""
        with self._condition:
            self._armed.pop(id(dbapi_connection), None)

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with _WATCHDOG_START:
            if self._pid == os.getpid():
                return  # another thread started it meanwhile
            # A forked child inherits the parent's state but not its thread.
            self._condition = threading.Condition()
            self._armed = {}
            self._wake_at = math.inf
            threading.Thread(target=self._watch, name="statement-watchdog", daemon=True).start()
            self._pid = os.getpid()

    def _watch(self) -> None:
        condition = self._condition
        while True:
            with condition:
                now = time.monotonic()
                for key, (deadline, fd) in list(self._armed.items()):
                    if deadline <= now:
                        # Under the lock: the owner cannot disarm and close this fd meanwhile.
                        del self._armed[key]
                        _shut_down(fd)
                upcoming = [deadline for deadline, _ in self._armed.values()]
                self._wake_at = min(upcoming) if upcoming else math.inf
                condition.wait(timeout=self._wake_at - now if upcoming else None)


def _shut_down(fd: int) -> None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def guard_engine(
    engine: sa.engine.Engine,
    *,
    ping: bool,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
) -> None:
    """Bound every statement of a PostgreSQL engine in time, and (`ping`) check each pooled
    connection on checkout within the connect timeout, so a frozen server costs a request
    a few seconds and a 503 instead of a hang."""
    if engine.dialect.name != "postgresql":
        return
    watchdog = StatementWatchdog(statement_timeout + STATEMENT_DEADLINE_GRACE_SECONDS)
    ping_deadline = connect_timeout

    # The DB-API cursor knows its connection (psycopg's does), even once SQLAlchemy has
    # invalidated its own wrapper, whose `.connection` would check out a new one.
    def before(_connection: Any, cursor: Any, *_args: Any) -> None:
        watchdog.arm(cursor.connection)

    def after(_connection: Any, cursor: Any, *_args: Any) -> None:
        watchdog.disarm(cursor.connection)

    def on_error(context: Any) -> None:
        # Any failed statement, not only a timed-out one: a deadline left armed would
        # later shut a healthy connection.
        cursor = getattr(context.execution_context, "cursor", None)
        if cursor is not None:
            watchdog.disarm(cursor.connection)

    # 0 turns statement limits off (a long migration run by hand), on both sides.
    if statement_timeout > 0:
        sa.event.listen(engine, "before_cursor_execute", before)
        sa.event.listen(engine, "after_cursor_execute", after)
        sa.event.listen(engine, "handle_error", on_error)
    if ping:

        def ping_on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            watchdog.arm(dbapi_connection, ping_deadline)
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:
                # The pool drops this connection and checks out a fresh one (bounded by
                # connect_timeout), which is what SQLAlchemy's own pre-ping does.
                raise sa.exc.DisconnectionError(str(exc)) from exc
            finally:
                watchdog.disarm(dbapi_connection)

        sa.event.listen(engine.pool, "checkout", ping_on_checkout)


def rows_matched(result: Any) -> int:
    """How many rows an UPDATE or DELETE matched.

    Session.execute is typed as returning a Result, which does not declare the cursor's
    `rowcount` that a DML statement's CursorResult carries.
    """
    return int(getattr(result, "rowcount", 0) or 0)


def is_postgresql(session_or_engine: Any) -> bool:
    """True when the bound engine speaks PostgreSQL (SKIP LOCKED, ON CONFLICT and friends)."""
    bind = (
        session_or_engine.get_bind()
        if hasattr(session_or_engine, "get_bind")
        else session_or_engine
    )
    return bool(bind.dialect.name == "postgresql")


def upsert(session_or_engine: Any, model: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of `model` that takes ON CONFLICT clauses, for the backend in use.

    Both dialects spell `on_conflict_do_nothing` / `on_conflict_do_update` the same way, so
    callers write one statement for PostgreSQL and for the SQLite file of `make run`.
    """
    return postgresql.insert(model) if is_postgresql(session_or_engine) else sqlite.insert(model)


def insert_missing(
    session_or_engine: Any, model: Any, values: Any, *, key: Sequence[str]
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of `values` (one row or a list) that skips each row whose `key` exists.

    ON CONFLICT DO NOTHING: of two transactions inserting the same key at once, the second
    waits for the first and then inserts nothing. Add `.returning(...)` to learn which
    rows went in (rowcount is not reliable through the ORM's insert path).
    """
    return (
        upsert(session_or_engine, model)
        .values(values)
        .on_conflict_do_nothing(index_elements=list(key))
    )


def locked_row(session: Session, model: type[M], key: str, value: Any, **defaults: Any) -> M:
    """The row of `model` whose unique column `key` is `value`, locked FOR UPDATE; inserted
    with `defaults` first when missing.

    ON CONFLICT DO NOTHING: of two transactions making the row at once, the second waits for
    the first and inserts nothing, and both then lock the one row. populate_existing: the
    locked row's current values, not what the session held before.
    """
    column = getattr(model, key)
    session.execute(insert_missing(session, model, {key: value, **defaults}, key=[key]))
    row: M = session.execute(
        sa.select(model)
        .where(column == value)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    return row


@sa.event.listens_for(sa.engine.Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers and the one writer of a `make run` SQLite file work side by side."""
    module = type(dbapi_connection).__module__
    if module.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
