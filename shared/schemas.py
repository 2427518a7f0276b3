"""marshmallow building blocks every service's schemas use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, fields

from shared.db import as_utc


class StrictSchema(Schema):
    """Refuses fields it does not declare: no mass assignment, nothing silently dropped."""

    class Meta:
        unknown = RAISE


class UtcDateTime(fields.DateTime):
    """ISO 8601 in UTC, whatever zone the database handed back (naive on SQLite)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, datetime):
            value = as_utc(value).astimezone(UTC)
        return super()._serialize(value, attr, obj, **kwargs)
