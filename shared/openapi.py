"""The OpenAPI document as the wire is: problem+json errors, every status, an operationId each.

flask-smorest documents errors as `application/json` with its own `{code, status, message}`
schema, and only the 422 of `@blp.arguments`; clients generated from that get a wrong
error model. `ProblemApi` documents every error response as RFC 9457 `Problem` under
`application/problem+json`; `operation` names a view's operation and the errors its use
case raises; `ProblemsPlugin` adds the statuses every view of a kind can answer (401
behind a token, 404 on a path with an id, 503 while the database is down).
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from apispec import BasePlugin
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from marshmallow import Schema, fields

from shared.errors import FIXED_PROBLEMS, PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE

F = TypeVar("F", bound=Callable[..., Any])

# Statuses no view lists itself, because they follow from how the view is reached.
AUTHENTICATED_ERRORS = (401,)
PATH_ID_ERRORS = (404,)
BODY_ERRORS = (400, 413)  # a body that is not JSON, or larger than 1 MiB
EVERY_VIEW_ERRORS = (503,)


class ProblemSchema(Schema):
    """An RFC 9457 problem document, as shared.errors.problem builds it."""

    type = fields.String(
        required=True, metadata={"example": PROBLEM_TYPE_BASE + "not-found", "format": "uri"}
    )
    title = fields.String(required=True, metadata={"example": "Not Found"})
    status = fields.Integer(required=True, metadata={"example": 404})
    detail = fields.String(required=True, metadata={"example": "No such order."})
    request_id = fields.String(
        allow_none=True, metadata={"example": "3f1c7a9e2b8d4e6f9a0b1c2d3e4f5a6b"}
    )
    errors = fields.Dict(
        metadata={
            "description": "Per-field messages of a 422.",
            "example": {"email": ["Not a valid email address."]},
        }
    )


def _status_name(status: int) -> str:
    """The response component flask-smorest registers for a status (`NOT_FOUND`)."""
    return http.HTTPStatus(status).name


def problem_example(status: int) -> dict[str, Any]:
    """A realistic problem body for a status, for the spec's examples."""
    title, code = FIXED_PROBLEMS.get(status, (http.HTTPStatus(status).phrase, None))
    return {
        "type": PROBLEM_TYPE_BASE + (code or title.lower().replace(" ", "-").replace("'", "")),
        "title": title,
        "status": status,
        "detail": title,
        "request_id": "3f1c7a9e2b8d4e6f9a0b1c2d3e4f5a6b",
    }


class ProblemApi(Api):  # type: ignore[misc]  # flask-smorest is untyped
    """flask-smorest's Api whose error responses are problem+json documents."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        # Replaces flask-smorest's own: it files every error under the success content type.
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                response["example"] = problem_example(status)
                prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        default = {
            "description": "Any other error, as a problem document.",
            "schema": self.ERROR_SCHEMA,
        }
        prepare_response(default, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)


def operation(
    blp: Blueprint, operation_id: str, *errors: int, conditional: bool = False
) -> Callable[[F], F]:
    """Name a view's operation and document the error statuses its use case can answer.

    `conditional`: the view answers If-None-Match with 304 (shared.conditional).
    """

    def decorator(func: F) -> F:
        if conditional:
            func = blp.alt_response(304, response=_status_name(304))(func)
        for status in errors:
            func = blp.alt_response(status, response=_status_name(status))(func)
        decorated: F = blp.doc(operationId=operation_id)(func)
        return decorated

    return decorator


class ProblemsPlugin(BasePlugin):
    """Adds to every operation the error statuses that follow from how it is reached."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        """Document 401 behind a token, 404 for a path id, 400/413 for a body, 503 always."""
        for spec_operation in (operations or {}).values():
            if not isinstance(spec_operation, dict):
                continue
            statuses: list[int] = list(EVERY_VIEW_ERRORS)
            if spec_operation.get("security"):
                statuses += AUTHENTICATED_ERRORS
            if path and "{" in path:
                statuses += PATH_ID_ERRORS
            if "requestBody" in spec_operation:
                statuses += BODY_ERRORS
            # Keys are ints or strings here (apispec turns them all into strings later).
            responses = spec_operation.setdefault("responses", {})
            documented = {str(status) for status in responses}
            for status in statuses:
                if str(status) not in documented:
                    responses[str(status)] = _status_name(status)
            if "304" in documented:
                _document_conditional(spec_operation)


class MinPropertiesPlugin(BasePlugin):
    """`minProperties` from a schema's `MIN_PROPERTIES`: a PATCH naming no field is a 422.

    apispec has no Meta option for it, and without it the document calls `{}` valid.
    """

    def schema_helper(
        self, name: str, definition: dict[str, Any], schema: Any = None, **_: Any
    ) -> dict[str, Any] | None:
        """The schema's minProperties, when it sets one."""
        minimum = getattr(schema, "MIN_PROPERTIES", None)
        return {"minProperties": minimum} if minimum else None


# What a conditional GET sends and answers (shared.conditional), documented once.
IF_NONE_MATCH_PARAMETER = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": "The ETag of the copy you hold: 304 with no body while it is current.",
}
CONDITIONAL_HEADERS = {
    "ETag": {
        "schema": {"type": "string"},
        "description": "Strong for one order (its version), weak for lists and pages.",
    },
    "Cache-Control": {"schema": {"type": "string", "example": "private, no-cache"}},
    "Vary": {"schema": {"type": "string", "example": "Authorization"}},
}


def _document_conditional(spec_operation: dict[str, Any]) -> None:
    """If-None-Match in, ETag and the caching headers out, on a conditional GET."""
    spec_operation.setdefault("parameters", []).append(dict(IF_NONE_MATCH_PARAMETER))
    responses = spec_operation["responses"]
    success = responses.get(200, responses.get("200"))
    if isinstance(success, dict):
        success.setdefault("headers", {}).update(CONDITIONAL_HEADERS)


def create_api(app: Any, blueprints: Iterable[Blueprint]) -> ProblemApi:
    """The service's Api with problem+json errors documented on every operation."""
    api = ProblemApi(app, spec_kwargs={"extra_plugins": [ProblemsPlugin(), MinPropertiesPlugin()]})
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    return api
