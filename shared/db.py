"""Database helpers shared by every service: naming convention, portable types, clock.

Each service declares its own `DeclarativeBase` with `NAMING_CONVENTION`: a base shared
between services would share one MetaData, and two services' `outbox` tables could then
not be imported into one process (the test run).
"""

from __future__ import annotations

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


def engine_options(url: str) -> dict[str, Any]:
    """Engine options that suit the backend: pool pre-ping for servers, WAL + timeout for SQLite."""
    if url.startswith("sqlite"):
        # Several processes (service, relay, worker) share one SQLite file under `make run`.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10, "pool_recycle": 1800}


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


def locked_row(session: Session, model: type[M], key: str, value: Any, **defaults: Any) -> M:
    """The row of `model` whose unique column `key` is `value`, locked FOR UPDATE; inserted
    with `defaults` first when missing.

    ON CONFLICT DO NOTHING: of two transactions making the row at once, the second waits for
    the first and inserts nothing, and both then lock the one row. populate_existing: the
    locked row's current values, not what the session held before.
    """
    column = getattr(model, key)
    session.execute(
        upsert(session, model)
        .values({key: value, **defaults})
        .on_conflict_do_nothing(index_elements=[column])
    )
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
