"""Keyset pagination, newest first: a page key and the opaque cursor that carries it.

Use cases take and return `PageKey`s; the HTTP layer turns them into opaque cursors
with `CursorField`, so a bad cursor is a 422 on the `cursor` field like any other input.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields

from shared.db import as_utc

MAX_CURSOR_CHARS = 200


@dataclass(frozen=True)
class PageKey:
    """Where a page (newest first) stopped: the last row's (created_at, id)."""

    created_at: datetime
    id: uuid.UUID

    @classmethod
    def of(cls, row: Any) -> PageKey:
        """The key of a row with `created_at` and `id` columns."""
        return cls(created_at=as_utc(row.created_at), id=row.id)


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
