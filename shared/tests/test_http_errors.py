"""Every error a service returns is problem+json with the request id, never HTML or a trace."""

import pytest
from flask.views import MethodView
from marshmallow import Schema, fields

from shared.app import ApiBlueprint, create_base_app, init_api
from shared.errors import ConflictError, TooManyRequestsError


class ThingSchema(Schema):
    name = fields.String(required=True)
    count = fields.Integer(required=True)


blp = ApiBlueprint("things", __name__, url_prefix="/things")


@blp.route("")
class Things(MethodView):
    @blp.arguments(ThingSchema)
    @blp.response(201, ThingSchema)
    def post(self, data):
        if data["name"] == "taken":
            raise ConflictError("That name is taken.")
        if data["name"] == "slow-down":
            raise TooManyRequestsError(retry_after=7)
        if data["name"] == "boom":
            raise RuntimeError("database password is hunter2")
        return data


@pytest.fixture
def client(tmp_path):
    app = create_base_app(
        "things", __name__, {}, {"TESTING": True, "APP_ENV": "test", "VAR_DIR": str(tmp_path)}
    )
    init_api(app, [blp])
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


def test_body_over_one_mebibyte_is_a_problem_413(client):
    response = client.post("/things", data="x" * (1024 * 1024 + 1), content_type="application/json")
    assert_problem(response, 413)


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
