"""How a failure is classified: broker or topology trouble, and transient handler errors."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy.exc

from shared.events import InvalidEvent

MAX_ERROR_CHARS = 1000


class BrokerUnavailable(ConnectionError):
    """The broker cannot be reached right now; back off and try again."""


class TopologyError(RuntimeError):
    """The broker refused our exchanges/queues (permissions or changed arguments)."""


def error_text(exc: BaseException) -> str:
    """The exception's type and message, cut to what a header or log line should hold."""
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


class TransientError(Exception):
    """A handler's dependency is unavailable right now: retried in place, never dead-lettered."""


# What fails because infrastructure is down rather than because of the event: SQLAlchemy's
# connection-level errors (it wraps the driver's; OperationalError also covers a lock or
# serialization timeout, and SQLite's "database is locked"), and sockets that could not
# connect or timed out. A handler raises TransientError for anything else of that kind.
DEFAULT_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    ConnectionError,
    TimeoutError,
)


def transient_errors(*extra: type[BaseException]) -> Callable[[BaseException], bool]:
    """A predicate for `Consumer(is_transient=...)`: the default errors plus `extra` types."""
    kinds = DEFAULT_TRANSIENT_ERRORS + extra

    def is_transient(exc: BaseException) -> bool:
        current: BaseException | None = exc
        while current is not None:
            if isinstance(current, InvalidEvent):
                return False
            if isinstance(current, kinds):
                return True
            if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
                return True
            # `raise ServiceError(...) from db_error` is still the database being down.
            current = current.__cause__
        return False

    return is_transient


is_transient_error = transient_errors()
