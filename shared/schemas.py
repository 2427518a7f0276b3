"""marshmallow building blocks every service's schemas use."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, fields

UNSTORABLE_TEXT_MESSAGE = "Must not contain NUL characters or unpaired UTF-16 surrogates."
# JSON may escape either ("\u0000", "\ud800"); PostgreSQL text cannot hold NUL, and a lone
# surrogate cannot be encoded as UTF-8 at all (the database driver, argon2 and hashlib fail).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

Messages = dict[str | int, Any]


def is_storable_text(value: str) -> bool:
    """True when `value` can be encoded as UTF-8 and stored in a PostgreSQL text column."""
    return _UNSTORABLE.search(value) is None


def _printable_name(name: str) -> str:
    # A field name is echoed in the error body and the logs, which must stay encodable.
    return name.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def unstorable_text(document: Any) -> Messages | None:
    """Where in a decoded JSON document a string (or a key) is not storable text, or None.

    The result has marshmallow's error shape: `{"name": [message]}`, nested by key and list
    index, so it can be raised as one ValidationError. Walked without recursion: json.loads
    accepts nesting deeper than a recursive walk could follow.
    """
    errors: Messages = {}
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not is_storable_text(value):
                _put(errors, path, [UNSTORABLE_TEXT_MESSAGE])
        elif isinstance(value, dict):
            for key, item in value.items():
                if is_storable_text(key):
                    stack.append(((*path, key), item))
                else:
                    _put(errors, (*path, _printable_name(key)), [UNSTORABLE_TEXT_MESSAGE])
        elif isinstance(value, list):
            stack.extend(((*path, index), item) for index, item in enumerate(value))
    return errors or None


def _put(errors: Messages, path: tuple[str | int, ...], messages: list[str]) -> None:
    if not path:
        path = ("_schema",)  # the document itself is a bad string
    node = errors
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return  # a bad key whose printable name equals another key: already reported
        node = child
    node[path[-1]] = messages


class StrictSchema(Schema):
    """Refuses fields it does not declare: no mass assignment, nothing silently dropped."""

    class Meta:
        unknown = RAISE


class StrictBoolean(fields.Boolean):
    """Only JSON `true` and `false`.

    marshmallow's Boolean also takes 0, 1 and "yes" (and `truthy={True}` does not help:
    1 == True, so 1 is in the set). A flag set by mistake is a 422, not a silent cast.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class UtcDateTime(fields.DateTime):
    """ISO 8601 in UTC, whatever zone the database handed back (naive on SQLite)."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        # Imported here: the event envelope and the gateway use this module without SQLAlchemy.
        from shared.db import as_utc

        if isinstance(value, datetime):
            value = as_utc(value).astimezone(UTC)
        return super()._serialize(value, attr, obj, **kwargs)
