"""Malformed, mistyped, unknown and oversize input gets a problem+json 4xx everywhere."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from services.auth import registration
from services.auth.models import LoginFailure, Outbox, RefreshToken, User, db
from services.auth.tests.conftest import PASSWORD, bearer, deps_of

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
MIB = 1024 * 1024

CREDENTIALS = {"email": "x@example.com", "password": PASSWORD}
# method, path, a valid body, who must be logged in
WRITE_ENDPOINTS = {
    "register": ("POST", "/api/v1/auth/register", {**CREDENTIALS, "name": "X"}, None),
    "login": ("POST", "/api/v1/auth/login", CREDENTIALS, None),
    "refresh": ("POST", "/api/v1/auth/refresh", {"refresh_token": "abc"}, None),
    "logout": ("POST", "/api/v1/auth/logout", {"refresh_token": "abc"}, "user"),
    "patch user": ("PATCH", "/api/v1/auth/users/{user_id}", {"role": "admin"}, "admin"),
}
READ_ENDPOINTS = {
    "me": ("GET", "/api/v1/auth/me", "user"),
    "jwks": ("GET", "/api/v1/auth/jwks.json", None),
    "well-known jwks": ("GET", "/.well-known/jwks.json", None),
    "users": ("GET", "/api/v1/auth/users", "admin"),
}
WRONG_TYPES = [1, 1.5, True, None, ["x"], {"a": 1}]
# Valid JSON strings no service can keep: a lone UTF-16 surrogate is not encodable as UTF-8
# (argon2, hashlib and the driver fail on it), PostgreSQL text cannot hold NUL.
UNSTORABLE_TEXT = ["\ud800", "abc\udfffdef" + PASSWORD, "a\u0000b", PASSWORD + "\x00"]


@pytest.fixture
def caller(auth, pg_app):
    """Headers per role and the id of a user to patch."""
    with pg_app.app_context():
        registration.create_admin(
            session=db.session(),
            deps=deps_of(pg_app),
            email="root@example.com",
            password=PASSWORD,
            name="Root",
        )
        db.session.commit()
    user = auth.signup()
    admin = auth.tokens("root@example.com")
    return {
        "headers": {
            None: {},
            "user": bearer(user["access_token"]),
            "admin": bearer(admin["access_token"]),
        },
        "user_id": user["user"]["id"],
    }


def send(client, caller, method, path, who, **kwargs):
    return client.open(
        path.format(user_id=caller["user_id"]),
        method=method,
        headers={**caller["headers"][who], **kwargs.pop("headers", {})},
        **kwargs,
    )


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= set(body)
    return body


@pytest.mark.parametrize("endpoint", list(WRITE_ENDPOINTS))
@pytest.mark.parametrize(
    "raw", ['{"email": ', "{'single': 'quotes'}", "\xff\xfe", "{}{}", "NaN-ish"]
)
def test_malformed_json_is_400(client, caller, endpoint, raw):
    method, path, _body, who = WRITE_ENDPOINTS[endpoint]
    response = send(
        client,
        caller,
        method,
        path,
        who,
        data=raw.encode("latin-1"),
        content_type="application/json",
    )
    assert_problem(response, 400)


@pytest.mark.parametrize("endpoint", list(WRITE_ENDPOINTS))
def test_a_body_that_is_not_an_object_is_422(client, caller, endpoint):
    method, path, _body, who = WRITE_ENDPOINTS[endpoint]
    for body in ([], "text", 3, None):
        assert_problem(send(client, caller, method, path, who, json=body), 422)


@pytest.mark.parametrize("endpoint", list(WRITE_ENDPOINTS))
def test_every_field_of_the_wrong_type_is_422_with_its_name(client, caller, endpoint):
    method, path, valid, who = WRITE_ENDPOINTS[endpoint]
    for field in valid:
        for wrong in WRONG_TYPES:
            response = send(client, caller, method, path, who, json={**valid, field: wrong})
            body = assert_problem(response, 422)
            assert field in body["errors"], (field, wrong, body)


def row_counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (User, RefreshToken, LoginFailure, Outbox)
        }


@pytest.mark.parametrize("endpoint", list(WRITE_ENDPOINTS))
def test_unstorable_text_in_any_field_is_422_with_its_name_and_changes_nothing(
    client, caller, pg_app, endpoint
):
    method, path, valid, who = WRITE_ENDPOINTS[endpoint]
    before = row_counts(pg_app)
    for field in valid:
        for text in UNSTORABLE_TEXT:
            # The test client writes JSON with ASCII escapes: "\ud800" reaches the parser.
            response = send(client, caller, method, path, who, json={**valid, field: text})
            body = assert_problem(response, 422)
            assert field in body["errors"], (field, text, body)
    # Not even a login throttle row: the request never reached the use case.
    assert row_counts(pg_app) == before


@pytest.mark.parametrize("active", [0, 1, "true", "false", "yes", None])
def test_active_takes_only_json_true_or_false(client, caller, active):
    method, path, _valid, who = WRITE_ENDPOINTS["patch user"]
    body = assert_problem(send(client, caller, method, path, who, json={"active": active}), 422)
    assert "active" in body["errors"]
    me = send(client, caller, "GET", "/api/v1/auth/me", "user")
    assert me.status_code == 200  # still active, whatever 0 or null might have meant


@pytest.mark.parametrize("endpoint", list(WRITE_ENDPOINTS))
def test_unknown_fields_are_422(client, caller, endpoint):
    method, path, valid, who = WRITE_ENDPOINTS[endpoint]
    response = send(client, caller, method, path, who, json={**valid, "is_admin": True})
    body = assert_problem(response, 422)
    assert "is_admin" in body["errors"]


@pytest.mark.parametrize("endpoint", list(WRITE_ENDPOINTS))
def test_missing_fields_are_422(client, caller, endpoint):
    method, path, _valid, who = WRITE_ENDPOINTS[endpoint]
    assert_problem(send(client, caller, method, path, who, json={}), 422)


@pytest.mark.parametrize("endpoint", list(WRITE_ENDPOINTS) + list(READ_ENDPOINTS))
def test_oversize_bodies_are_413(client, caller, endpoint):
    if endpoint in WRITE_ENDPOINTS:
        method, path, _body, who = WRITE_ENDPOINTS[endpoint]
    else:
        method, path, who = READ_ENDPOINTS[endpoint]
    big = b'{"email": "' + b"a" * MIB + b'"}'
    response = send(client, caller, method, path, who, data=big, content_type="application/json")
    assert_problem(response, 413)


@pytest.mark.parametrize("endpoint", list(READ_ENDPOINTS))
def test_wrong_methods_are_405_problems(client, caller, endpoint):
    _method, path, who = READ_ENDPOINTS[endpoint]
    assert_problem(send(client, caller, "DELETE", path, who), 405)


def test_unknown_paths_are_404_problems(client):
    assert_problem(client.get("/api/v1/auth/nope"), 404)
    assert_problem(client.patch("/api/v1/auth/users/not-a-uuid", json={}), 404)


@pytest.mark.parametrize("query", ["token=abc&token=def", "limit=5&limit=6", "token=abc&token=abc"])
def test_a_query_argument_given_twice_is_422_naming_it(client, caller, query):
    path = "/api/v1/auth/users" if query.startswith("limit") else "/api/v1/auth/verify-email"
    headers = caller["headers"]["admin" if path.endswith("users") else None]
    answer = client.get(f"{path}?{query}", headers=headers)

    assert answer.status_code == 422 and answer.mimetype == PROBLEM
    assert answer.get_json()["errors"] == {query.split("=")[0]: ["Give this argument once."]}
