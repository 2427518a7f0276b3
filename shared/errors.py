"""`application/problem+json` (RFC 9457) for every error a service or the gateway returns.

Use cases raise the `ServiceError` subclasses below (no Flask import needed); the HTTP
layer turns those, werkzeug's HTTP errors, flask-smorest's validation errors and any
unexpected exception into one problem document. Never an HTML page, never a trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, json
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://flask-suite.dev/problems/"
# Seconds a client should wait before retrying when the database does not answer.
DATABASE_RETRY_AFTER_SECONDS = 5

# Problem titles and types the suite fixes itself, whoever raises the error (a schema, a use
# case, werkzeug, the nginx edge): Python's own phrases for these changed between versions.
VALIDATION_TITLE, VALIDATION_CODE = "Unprocessable Content", "validation-error"
TOO_LARGE_TITLE, TOO_LARGE_CODE = "Payload Too Large", "payload-too-large"
FIXED_PROBLEMS = {
    413: (TOO_LARGE_TITLE, TOO_LARGE_CODE),
    422: (VALIDATION_TITLE, VALIDATION_CODE),
}

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A use case refused a request; `status` is the HTTP status it maps to."""

    status = 400
    title = "Bad Request"
    code = "bad-request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = dict(headers or {})


class UnauthorizedError(ServiceError):
    """The caller is not authenticated (or the credentials are wrong)."""

    status, title, code = 401, "Unauthorized", "unauthorized"


class ForbiddenError(ServiceError):
    """The caller is authenticated but may not do this."""

    status, title, code = 403, "Forbidden", "forbidden"


class NotFoundError(ServiceError):
    """No such object, or not one the caller may see (BOLA answers 404, not 403)."""

    status, title, code = 404, "Not Found", "not-found"


class ConflictError(ServiceError):
    """The request conflicts with the current state (taken email, illegal transition)."""

    status, title, code = 409, "Conflict", "conflict"


class GoneError(ServiceError):
    """The thing asked for existed but is no longer usable (an expired link)."""

    status, title, code = 410, "Gone", "gone"


class PreconditionFailedError(ServiceError):
    """An If-Match precondition no longer holds."""

    status, title, code = 412, "Precondition Failed", "precondition-failed"


class UnprocessableError(ServiceError):
    """Well-formed but semantically invalid input."""

    status, title, code = 422, VALIDATION_TITLE, VALIDATION_CODE


class TooManyRequestsError(ServiceError):
    """Throttled; carries Retry-After."""

    status, title, code = 429, "Too Many Requests", "rate-limited"

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class ServiceUnavailableError(ServiceError):
    """A dependency is down; the client may retry."""

    status, title, code = 503, "Service Unavailable", "unavailable"


def _slug(title: str) -> str:
    return title.lower().replace(" ", "-").replace("'", "")


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    code: str | None = None,
    errors: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Build a problem+json response; every error body in the suite comes from here."""
    from http import HTTPStatus

    if title is None and status in FIXED_PROBLEMS:
        title, code = FIXED_PROBLEMS[status]
    try:
        default_title = HTTPStatus(status).phrase
    except ValueError:
        default_title = "Error"
    title = title or default_title
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (code or _slug(title)),
        "title": title,
        "status": status,
        "detail": detail or title,
        "request_id": g.get("request_id") if g else None,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _validation_errors(exc: HTTPException) -> Mapping[str, Any] | None:
    """flask-smorest/webargs put marshmallow messages on `exc.data["messages"]`."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        messages = data.get("messages")
        if isinstance(messages, dict):
            # webargs nests by location ({"json": {...}}); one location per request here.
            if len(messages) == 1:
                only = next(iter(messages.values()))
                if isinstance(only, dict):
                    return only
            return messages
    return None


def _detail_of(exc: HTTPException) -> str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return exc.description


def handle_http_exception(exc: HTTPException) -> Response:
    """werkzeug/flask-smorest HTTP errors as problem+json."""
    status = exc.code or 500
    if isinstance(exc, RequestEntityTooLarge):
        return problem(413, "Request body is larger than 1 MiB.")
    errors = _validation_errors(exc)
    detail = _detail_of(exc)
    if status == 422 and errors:
        detail = "The request body or query failed validation; see `errors`."
    headers = {}
    response = exc.get_response()
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in response.headers:
            headers[name] = response.headers[name]
    return problem(status, detail, errors=errors, headers=headers)


def handle_service_error(exc: ServiceError) -> Response:
    """A use case's refusal as problem+json."""
    return problem(
        exc.status,
        exc.detail,
        title=exc.title,
        code=exc.code,
        errors=exc.errors,
        headers=exc.headers,
    )


def handle_unexpected(exc: Exception) -> Response:
    """Anything else is a 500 with no detail leaked; the trace goes to the log only."""
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "An unexpected error occurred; it has been logged.")


def is_database_unavailable(exc: BaseException) -> bool:
    """True for SQLAlchemy errors that mean the database cannot be used right now.

    The server is down or unreachable, the connection broke, the pool had no connection
    to give within its timeout, or the server refused the statement for a passing reason
    (shutting down, a timeout, a deadlock): OperationalError as the DB-API defines it.
    """
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def handle_database_error(exc: Exception) -> Response:
    """503 with Retry-After when the database is unavailable; any other error is a 500."""
    if not is_database_unavailable(exc):
        return handle_unexpected(exc)
    # One line, no trace: during an outage every request fails the same way.
    log.warning(
        "database unavailable", extra={"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    )
    unavailable = ServiceUnavailableError(
        "The database is unavailable; try again shortly.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )
    return handle_service_error(unavailable)


def init_app(app: Flask) -> None:
    """Register the problem+json handlers on an app."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(Exception, handle_unexpected)


def init_database_errors(app: Flask) -> None:
    """Answer 503 instead of 500 while the app's database is unavailable (services only)."""
    from sqlalchemy import exc as sa_exc

    app.register_error_handler(sa_exc.DBAPIError, handle_database_error)
    app.register_error_handler(sa_exc.TimeoutError, handle_database_error)
