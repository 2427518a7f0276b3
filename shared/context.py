"""Per-request / per-event correlation: request id and W3C traceparent, without Flask.

Kept in contextvars so that `services.py` code (which never imports Flask) and event
handlers read the same values whether they run under a request or under a consumer.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_request_id() -> str:
    """A fresh request id (32 hex chars)."""
    return uuid.uuid4().hex


def clean_request_id(value: str | None) -> str:
    """Keep a client's request id when it is sane, otherwise make one (ids end up in logs)."""
    if value and _REQUEST_ID_RE.match(value):
        return value
    return new_request_id()


def child_traceparent(parent: str | None) -> str:
    """A traceparent for this hop: same trace id as the parent (if valid), new span id."""
    match = _TRACEPARENT_RE.match(parent or "")
    trace_id = match.group(1) if match and match.group(1) != "0" * 32 else secrets.token_hex(16)
    flags = match.group(3) if match else "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id inside a traceparent, or None."""
    match = _TRACEPARENT_RE.match(traceparent or "")
    return match.group(1) if match else None


def current_request_id() -> str | None:
    """Request id of the request or event being handled, if any."""
    return _request_id.get()


def current_traceparent() -> str | None:
    """Traceparent of the request or event being handled, if any."""
    return _traceparent.get()


def set_correlation(request_id: str | None, traceparent: str | None) -> None:
    """Set both ids for the rest of this context (a request; the caller resets nothing)."""
    _request_id.set(request_id)
    _traceparent.set(traceparent)


@contextmanager
def correlation(request_id: str | None, traceparent: str | None) -> Iterator[None]:
    """Set both ids for the duration of a block (an event handler), then restore."""
    t1 = _request_id.set(request_id)
    t2 = _traceparent.set(traceparent)
    try:
        yield
    finally:
        _request_id.reset(t1)
        _traceparent.reset(t2)
