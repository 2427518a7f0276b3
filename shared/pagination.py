"""Keyset pagination, newest first: a page key, the query that walks it, the opaque cursor.

Use cases take and return `PageKey`s (`keyset_page` fetches one page); the HTTP layer turns
them into opaque cursors with `CursorField`, so a bad cursor is a 422 on the `cursor` field
like any other input. List endpoints read `limit` and `cursor` with `PageQueryArgsSchema`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from marshmallow import ValidationError, fields, validate
from sqlalchemy.orm import QueryableAttribute, Session

from shared.db import as_utc
from shared.schemas import StrictSchema

T = TypeVar("T")

MAX_CURSOR_CHARS = 200
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class PageKey:
    """Where a page (newest first) stopped: the last row's (created_at, id)."""

    created_at: datetime
    id: uuid.UUID

    @classmethod
    def of(cls, row: Any) -> PageKey:
        """The key of a row with `created_at` and `id` columns."""
        return cls(created_at=as_utc(row.created_at), id=row.id)


def older_than(
    created_at: Any, id: Any, key_created_at: Any, key_id: Any
) -> sa.ColumnElement[bool]:
    """Rows after a page key, newest first: the row value `(created_at, id) < key`.

    The key may be values or bound parameters (a statement built once). The row-value
    comparison walks a `(..., created_at, id)` index directly on PostgreSQL.
    """
    if isinstance(key_created_at, sa.ColumnElement):
        return sa.tuple_(created_at, id) < sa.tuple_(key_created_at, key_id)
    # Plain values: bound with the columns' own types (UUID as SQLite stores it, and so on).
    return sa.tuple_(created_at, id) < (key_created_at, key_id)


def split_page(
    rows: list[T], limit: int, key: Callable[[T], PageKey] = PageKey.of
) -> tuple[list[T], PageKey | None]:
    """The first `limit` of `limit + 1` fetched rows, and the next page's key (None when last).

    Fetching one row more than a page tells whether another page follows without a count.
    """
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, key(rows[-1])


def keyset_page(
    session: Session,
    query: sa.Select[T],
    *,
    created_at: QueryableAttribute[datetime],
    id: QueryableAttribute[uuid.UUID],
    limit: int,
    after: PageKey | None = None,
) -> tuple[list[T], PageKey | None]:
    """Up to `limit` rows of `query` newest first, from just after `after`; and the next key.

    The next key is None on the last page.
    """
    query = query.order_by(created_at.desc(), id.desc()).limit(limit + 1)
    if after is not None:
        query = query.where(older_than(created_at, id, after.created_at, after.id))
    return split_page(list(session.scalars(query).all()), limit)


class CursorField(fields.Field[PageKey]):
    """An opaque cursor: base64url of a PageKey's (created_at, id)."""

    def _serialize(self, value: PageKey | None, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        created_at = as_utc(value.created_at).astimezone(UTC).isoformat()
        raw = json.dumps([created_at, str(value.id)], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> PageKey:
        if not isinstance(value, str) or len(value) > MAX_CURSOR_CHARS:
            raise ValidationError("Invalid cursor.")
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            created_at, row_id = json.loads(raw)
            key = PageKey(created_at=datetime.fromisoformat(created_at), id=uuid.UUID(row_id))
        except (binascii.Error, ValueError, TypeError, AttributeError):
            raise ValidationError("Invalid cursor.") from None
        if key.created_at.tzinfo is None:
            raise ValidationError("Invalid cursor.")
        return key


def page_limit(default: int = 20) -> fields.Integer:
    """The `limit` query argument: rows per page, 1 to MAX_PAGE_SIZE, `default` when absent."""
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


class PageQueryArgsSchema(StrictSchema):
    """Query arguments of a keyset-paginated list: page size and the previous page's cursor.

    Services add their filters (and may declare `limit = page_limit(other_default)`);
    undeclared arguments are refused.
    """

    limit = page_limit()
    cursor = CursorField(metadata={"description": "`next_cursor` of the previous page."})
