"""Every error a service returns is problem+json with the request id, never HTML or a trace."""

import io
import json

import pytest
from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import exc as sa_exc

from shared.app import ApiBlueprint, create_base_app, init_api
from shared.errors import (
    ConflictError,
    TooManyRequestsError,
    UnprocessableError,
    init_database_errors,
)
from shared.pagination import PageQueryArgsSchema
from shared.schemas import UNSTORABLE_TEXT_MESSAGE, StrictSchema

MIB = 1024 * 1024


class TagSchema(StrictSchema):
    label = fields.String(required=True)


class ThingSchema(Schema):
    name = fields.String(required=True)
    count = fields.Integer(required=True)
    tags = fields.List(fields.Nested(TagSchema))
    note = fields.String()


class ThingQueryArgsSchema(PageQueryArgsSchema):
    colour = fields.String()


class ThingHeadersSchema(Schema):
    """A plain Schema (marshmallow's default is to refuse unknown keys)."""

    trace = fields.String(data_key="X-Trace")


blp = ApiBlueprint("things", __name__, url_prefix="/things")


@blp.route("")
class Things(MethodView):
    @blp.arguments(ThingQueryArgsSchema, location="query")
    @blp.arguments(ThingHeadersSchema, location="headers")
    @blp.response(200)
    def get(self, args, headers):
        return {"args": {k: v for k, v in args.items() if k != "limit"}, "headers": headers}

    @blp.arguments(ThingSchema)
    @blp.response(201, ThingSchema)
    def post(self, data):
        if data["name"] == "taken":
            raise ConflictError("That name is taken.")
        if data["name"] == "slow-down":
            raise TooManyRequestsError(retry_after=7)
        if data["name"] == "boom":
            raise RuntimeError("database password is hunter2")
        if data["name"] == "refused-by-use-case":
            raise UnprocessableError("No.", errors={"name": ["No."]})
        if data["name"] in DATABASE_ERRORS:
            raise DATABASE_ERRORS[data["name"]]
        return data


DATABASE_ERRORS = {
    "db-gone": sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    "db-interface": sa_exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
    "pool-empty": sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
    "db-integrity": sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
}


@pytest.fixture
def client(tmp_path):
    app = create_base_app(
        "things", __name__, {}, {"TESTING": True, "APP_ENV": "test", "VAR_DIR": str(tmp_path)}
    )
    init_api(app, [blp])
    init_database_errors(app)
    return app.test_client()


def assert_problem(response, status):
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_unknown_route_is_a_problem_404(client):
    assert_problem(client.get("/nowhere"), 404)


def test_wrong_method_is_a_problem_405_with_allow(client):
    response = client.delete("/things")
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    "body",
    ["{not json", '{"count": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000],
    ids=["broken", "5000-digit number", "deeply nested"],
)
def test_json_the_parser_cannot_load_is_a_problem_400(client, body):
    response = client.post("/things", data=body, content_type="application/json")
    assert_problem(response, 400)


def test_wrong_types_and_unknown_fields_list_each_field(client):
    response = client.post("/things", json={"name": "x", "count": "many", "admin": True})
    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"count", "admin"}


def test_a_schema_error_and_a_use_case_refusal_are_one_problem_type(client):
    by_schema = assert_problem(client.post("/things", json={"name": "x"}), 422)
    by_use_case = assert_problem(
        client.post("/things", json={"name": "refused-by-use-case", "count": 1}), 422
    )
    assert by_schema["type"] == by_use_case["type"]
    assert by_schema["type"] == "https://flask-suite.dev/problems/validation-error"
    assert by_schema["title"] == by_use_case["title"] == "Unprocessable Content"


# A lone UTF-16 surrogate cannot be encoded as UTF-8, PostgreSQL text cannot hold NUL: both
# must be a 422 naming the field before any use case, hash or database sees them.
UNSTORABLE = {"lone surrogate": "\\ud800", "NUL": "a\\u0000b"}


@pytest.mark.parametrize("escaped", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_text_that_cannot_be_stored_is_a_422_naming_its_field(client, escaped):
    raw = '{"name": "' + escaped + '", "count": 1}'
    response = client.post("/things", data=raw, content_type="application/json")
    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"name"}


@pytest.mark.parametrize("escaped", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_unstorable_text_deep_in_a_body_is_named_by_its_path(client, escaped):
    raw = '{"name": "ok", "count": 1, "tags": [{"label": "x"}, {"label": "' + escaped + '"}]}'
    response = client.post("/things", data=raw, content_type="application/json")
    body = assert_problem(response, 422)
    assert body["errors"] == {"tags": {"1": {"label": [UNSTORABLE_TEXT_MESSAGE]}}}


def test_an_unstorable_field_name_is_a_422_too(client):
    raw = '{"name": "ok", "count": 1, "\\ud800": 1}'
    response = client.post("/things", data=raw, content_type="application/json")
    body = assert_problem(response, 422)
    assert list(body["errors"]) == ["\\ud800"]


def test_a_nul_in_a_query_argument_is_a_422_naming_it(client):
    body = assert_problem(client.get("/things?colour=re%00d"), 422)
    assert set(body["errors"]) == {"colour"}


def test_ordinary_unicode_and_control_free_text_passes(client):
    response = client.post("/things", json={"name": "Zoë 🚀 \u00e9", "count": 1, "note": "a\tb"})
    assert response.status_code == 201
    assert response.get_json()["name"] == "Zoë 🚀 \u00e9"


def test_unknown_query_arguments_are_a_422_naming_them(client):
    body = assert_problem(client.get("/things?colour=red&foo=bar"), 422)
    assert set(body["errors"]) == {"foo"}


def test_declared_query_arguments_and_any_headers_are_accepted(client):
    response = client.get("/things?colour=red&limit=5", headers={"X-Trace": "t1", "X-Other": "1"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"args": {"colour": "red"}, "headers": {"trace": "t1"}}


def test_body_over_one_mebibyte_is_a_problem_413(client):
    response = client.post("/things", data="x" * (MIB + 1), content_type="application/json")
    assert_problem(response, 413)


def test_the_413_problem_is_the_one_the_nginx_edge_answers_too(client):
    body = assert_problem(client.post("/things", data="x" * (MIB + 1)), 413)
    assert body["type"] == "https://flask-suite.dev/problems/payload-too-large"
    assert body["title"] == "Payload Too Large"


def chunked(client, body: bytes):
    """POST `body` without a Content-Length, as a server hands on a chunked upload."""
    return client.post(
        "/things",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"},
    )


def padded(size: int) -> bytes:
    """A valid JSON body of exactly `size` bytes."""
    body = json.dumps({"name": "big", "count": 1}).encode()
    return body + b" " * (size - len(body))


def test_a_chunked_body_over_one_mebibyte_is_a_problem_413(client):
    # werkzeug stops reading at the limit without an error: the view would see 1 MiB of a
    # longer body, here a valid JSON object followed by 2 MiB of padding.
    assert_problem(chunked(client, padded(3 * MIB)), 413)
    assert_problem(chunked(client, padded(MIB + 1)), 413)


def test_a_chunked_body_within_the_limit_is_read_whole(client):
    response = chunked(client, padded(MIB))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["name"] == "big"


def test_use_case_errors_keep_their_status_and_headers(client):
    assert_problem(client.post("/things", json={"name": "taken", "count": 1}), 409)
    response = client.post("/things", json={"name": "slow-down", "count": 1})
    assert_problem(response, 429)
    assert response.headers["Retry-After"] == "7"


def test_unexpected_errors_are_a_500_without_the_trace(client):
    response = client.post("/things", json={"name": "boom", "count": 1})
    body = assert_problem(response, 500)
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" not in body["detail"]


@pytest.mark.parametrize("name", ["db-gone", "db-interface", "pool-empty"])
def test_an_unavailable_database_is_a_503_with_retry_after(client, name):
    response = client.post("/things", json={"name": name, "count": 1})
    body = assert_problem(response, 503)
    assert body["type"] == "https://flask-suite.dev/problems/unavailable"
    assert response.headers["Retry-After"] == "5"
    assert "server closed" not in body["detail"]


def test_other_database_errors_stay_a_500(client):
    assert_problem(client.post("/things", json={"name": "db-integrity", "count": 1}), 500)


def test_a_sane_client_request_id_is_echoed_and_a_bad_one_replaced(client):
    assert (
        client.get("/healthz-missing", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    replaced = client.get("/x", headers={"X-Request-ID": "bad id <script>"})
    assert replaced.headers["X-Request-ID"] != "bad id <script>"
    assert len(replaced.headers["X-Request-ID"]) == 32


def test_success_is_plain_json(client):
    response = client.post("/things", json={"name": "ok", "count": 2})
    assert response.status_code == 201
    assert response.get_json() == {"name": "ok", "count": 2}
