"""CloudEvents 1.0 envelope (JSON structured mode), typed and validated on receipt.

A small typed equivalent of the `cloudevents` SDK: the SDK pulls in its own HTTP/Kafka
conversion layers and gives untyped dicts, while we need one JSON shape, strict
validation of what arrives from the broker, and our two extensions.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.context import current_request_id, current_traceparent
from shared.schemas import unstorable_text

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_EVENT_BYTES = 256 * 1024
# What consumers store of an event must fit their columns: the inbox and the outbox keep the
# id in a String(36) (a UUID), notifications keep the type in a String(64). An event that
# does not fit is malformed, dead-lettered at once, instead of failing in every retry.
MAX_ID_CHARS = 36
MAX_TYPE_CHARS = 64
MAX_SOURCE_CHARS = 255
MAX_SUBJECT_CHARS = 255
MAX_EXTENSION_CHARS = 128  # requestid (the request id is at most 128), traceparent (55)
MAX_TIME_CHARS = 64
MAX_DATASCHEMA_CHARS = 255
# Printable ASCII without spaces: ids, types, sources and the correlation extensions.
_TOKEN_RE = re.compile(r"\A[\x21-\x7e]+\Z")
# Any text but control characters (a subject may be a name or a path with spaces).
_TEXT_RE = re.compile(r"\A[^\x00-\x1f\x7f\ud800-\udfff]+\Z")


class InvalidEvent(ValueError):
    """The bytes received are not a CloudEvent this suite understands."""


@dataclass(frozen=True)
class Event:
    """One CloudEvent. `type` doubles as the routing key on the `events` exchange."""

    type: str
    source: str
    data: dict[str, Any]
    subject: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    requestid: str | None = None
    traceparent: str | None = None
    # Which schema and version `data` follows (see shared.contracts).
    dataschema: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The structured-mode JSON object."""
        body: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": self.data,
        }
        if self.dataschema is not None:
            body["dataschema"] = self.dataschema
        if self.subject is not None:
            body["subject"] = self.subject
        if self.requestid is not None:
            body["requestid"] = self.requestid
        if self.traceparent is not None:
            body["traceparent"] = self.traceparent
        return body

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON bytes, as published."""
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode()


def new_event(
    type: str,
    source: str,
    data: dict[str, Any],
    *,
    subject: str | None = None,
    dataschema: str | None = None,
) -> Event:
    """An event stamped with a new id, the current time and the current request/trace ids."""
    if not _TYPE_RE.match(type) or len(type) > MAX_TYPE_CHARS:
        raise ValueError(f"bad event type {type!r}")
    return Event(
        type=type,
        source=source,
        data=data,
        subject=subject,
        requestid=current_request_id(),
        traceparent=current_traceparent(),
        dataschema=dataschema,
    )


def _require_str(
    body: dict[str, Any],
    name: str,
    *,
    max_chars: int,
    pattern: re.Pattern[str] = _TOKEN_RE,
    optional: bool = False,
) -> str | None:
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"attribute {name!r} must be a non-empty string")
    if len(value) > max_chars:
        raise InvalidEvent(f"attribute {name!r} is longer than {max_chars} characters")
    if not pattern.match(value):
        allowed = "printable ASCII without spaces" if pattern is _TOKEN_RE else "no control codes"
        raise InvalidEvent(f"attribute {name!r} must be text of {allowed}")
    return value


def parse_event(raw: bytes | str) -> Event:
    """Parse and validate a structured-mode CloudEvent; raise InvalidEvent on anything off."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("event too large")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    return event_from_body(body)


def event_from_body(body: Any) -> Event:
    """Validate an already decoded structured-mode CloudEvent; raise InvalidEvent on anything off.

    For a document that is JSON already decoded (an outbox row's payload column): the relay
    skips a dumps/loads round trip per event this way.
    """
    if not isinstance(body, dict):
        raise InvalidEvent("event must be a JSON object")
    if body.get("specversion") != SPECVERSION:
        raise InvalidEvent("specversion must be '1.0'")
    event_id = _require_str(body, "id", max_chars=MAX_ID_CHARS)
    source = _require_str(body, "source", max_chars=MAX_SOURCE_CHARS)
    type_ = _require_str(body, "type", max_chars=MAX_TYPE_CHARS)
    assert event_id is not None and source is not None and type_ is not None
    if not _TYPE_RE.match(type_):
        raise InvalidEvent(f"bad type {type_!r}")
    raw_time = _require_str(body, "time", max_chars=MAX_TIME_CHARS)
    assert raw_time is not None
    try:
        time = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent("time must be RFC 3339") from None
    if time.tzinfo is None:
        raise InvalidEvent("time must carry an offset")
    data = body.get("data")
    if not isinstance(data, dict):
        raise InvalidEvent("data must be a JSON object")
    unstorable = unstorable_text(data)
    if unstorable:
        # No consumer could store such a value (nor write it as UTF-8): no retry helps.
        fields = ", ".join(sorted(str(name) for name in unstorable)[:10])
        raise InvalidEvent(f"data holds NUL or unpaired surrogates (not storable) in: {fields}")
    return Event(
        type=type_,
        source=source,
        data=data,
        subject=_require_str(
            body, "subject", max_chars=MAX_SUBJECT_CHARS, pattern=_TEXT_RE, optional=True
        ),
        id=event_id,
        time=time,
        requestid=_require_str(body, "requestid", max_chars=MAX_EXTENSION_CHARS, optional=True),
        traceparent=_require_str(body, "traceparent", max_chars=MAX_EXTENSION_CHARS, optional=True),
        dataschema=_require_str(body, "dataschema", max_chars=MAX_DATASCHEMA_CHARS, optional=True),
    )
