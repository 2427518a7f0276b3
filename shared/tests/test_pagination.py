"""Keyset pages walk every row once, newest first; cursors round-trip the page key and refuse
anything that is not one of ours; the one upsert inserts once on both backends."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from marshmallow import Schema, ValidationError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from shared.db import locked_row, upsert
from shared.pagination import CursorField, PageKey, keyset_page, older_than, split_page


class Base(DeclarativeBase):
    metadata = sa.MetaData()


class Row(Base):
    __tablename__ = "rows"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    name: Mapped[str] = mapped_column(sa.String(20), unique=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def session(request, tmp_path):
    """A session on SQLite (`make run`) or on a fresh PostgreSQL database, with the table."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pages.db'}"
    else:
        url = request.getfixturevalue("database_factory")("pages")
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def add_rows(session, count):
    """`count` rows, three to a timestamp (ties break on id), oldest first."""
    start = datetime(2026, 11, 24, 12, tzinfo=UTC)
    for n in range(count):
        row = Row(id=uuid.uuid4(), created_at=start + timedelta(seconds=n // 3), name=f"r{n}")
        session.add(row)
    session.flush()


def newest_first(session):
    return [
        row.name
        for row in session.scalars(sa.select(Row).order_by(Row.created_at.desc(), Row.id.desc()))
    ]


def test_keyset_pages_walk_every_row_once_newest_first(session):
    add_rows(session, 11)
    walked, after, pages = [], None, 0
    while True:
        rows, after = keyset_page(
            session, sa.select(Row), created_at=Row.created_at, id=Row.id, limit=4, after=after
        )
        walked += [row.name for row in rows]
        pages += 1
        if after is None:
            break

    assert walked == newest_first(session)
    assert pages == 3


def test_a_statement_built_once_with_bound_keys_walks_the_same_pages(session):
    add_rows(session, 7)
    query = (
        sa.select(Row)
        .where(
            older_than(
                Row.created_at,
                Row.id,
                sa.bindparam("after_created_at", type_=Row.created_at.type),
                sa.bindparam("after_id", type_=Row.id.type),
            )
        )
        .order_by(Row.created_at.desc(), Row.id.desc())
        .limit(sa.bindparam("limit"))
    )
    first, after = keyset_page(
        session, sa.select(Row), created_at=Row.created_at, id=Row.id, limit=3
    )
    fetched = list(
        session.scalars(
            query, {"after_created_at": after.created_at, "after_id": after.id, "limit": 4}
        )
    )
    second, next_key = split_page(fetched, 3)

    assert [row.name for row in first + second] == newest_first(session)[:6]
    assert next_key == PageKey.of(second[-1])


def test_the_upsert_inserts_once_and_skips_the_conflict(session):
    now = datetime.now(UTC)
    for _ in range(2):
        session.execute(
            upsert(session, Row)
            .values(id=uuid.uuid4(), created_at=now, name="taken")
            .on_conflict_do_nothing(index_elements=[Row.name])
        )

    assert session.scalar(sa.select(sa.func.count()).select_from(Row)) == 1


class PageArgs(Schema):
    cursor = CursorField()


def test_a_cursor_carries_the_page_key_back_unchanged():
    key = PageKey(created_at=datetime(2026, 11, 24, 12, 0, 1, 5, tzinfo=UTC), id=uuid.uuid4())
    cursor = PageArgs().dump({"cursor": key})["cursor"]
    assert PageArgs().load({"cursor": cursor})["cursor"] == key


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "", "x" * 500, "WyIyMDI2LTExLTI0VDEyOjAwOjAxIiwgIm5vdC1hLXV1aWQiXQ", 7],
    ids=["not base64 json", "empty", "too long", "bad uuid", "not a string"],
)
def test_cursors_that_are_not_ours_are_a_validation_error(cursor):
    with pytest.raises(ValidationError):
        PageArgs().load({"cursor": cursor})


def test_locked_row_makes_the_row_once_and_keeps_what_it_holds(session):
    made = locked_row(session, Row, "name", "u1", id=uuid.uuid4(), created_at=datetime.now(UTC))
    again = locked_row(session, Row, "name", "u1", id=uuid.uuid4(), created_at=datetime.now(UTC))

    assert again.id == made.id
    assert session.scalar(sa.select(sa.func.count()).select_from(Row)) == 1
