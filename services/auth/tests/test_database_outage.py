"""While the database is down every route answers 503 with Retry-After, not a 500."""

from __future__ import annotations

import logging
import uuid

import pytest

from services.auth import sessions
from services.auth.models import User
from services.auth.tests.conftest import PASSWORD, bearer, deps_of, make_app
from shared.db import utcnow
from tests.support import free_port

PROBLEM = "application/problem+json"


@pytest.fixture
def down_app(keys_dir):
    """An app whose PostgreSQL is a port nothing listens on."""
    return make_app(f"postgresql://postgres@127.0.0.1:{free_port()}/auth", keys_dir)


def admin_token(app) -> str:
    """An access token signed by the app's own key (issuing one needs no database)."""
    admin = User(id=uuid.uuid4(), role="admin")
    return sessions.issue_access_token(deps=deps_of(app), user=admin, now=utcnow())


def requests_of(app):
    token = admin_token(app)
    return {
        "register": (
            "POST",
            "/api/v1/auth/register",
            {"email": "a@example.com", "password": PASSWORD, "name": "A"},
            {},
        ),
        "login": (
            "POST",
            "/api/v1/auth/login",
            {"email": "a@example.com", "password": PASSWORD},
            {},
        ),
        "refresh": ("POST", "/api/v1/auth/refresh", {"refresh_token": "abc"}, {}),
        "me": ("GET", "/api/v1/auth/me", None, bearer(token)),
        "users": ("GET", "/api/v1/auth/users", None, bearer(token)),
    }


@pytest.mark.parametrize("route", ["register", "login", "refresh", "me", "users"])
def test_every_route_answers_503_with_retry_after_while_the_database_is_down(
    down_app, route, caplog
):
    method, path, body, headers = requests_of(down_app)[route]
    client = down_app.test_client()
    with caplog.at_level(logging.WARNING):
        response = client.open(path, method=method, json=body, headers=headers)

    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["type"].endswith("/unavailable")
    assert "database" in problem["detail"]
    assert int(response.headers["Retry-After"]) > 0
    # One line for the operator, without the trace; not the server's address for the client.
    outage = [r for r in caplog.records if r.getMessage() == "database unavailable"]
    assert len(outage) == 1 and outage[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_readiness_reports_the_database_as_the_failing_check(down_app):
    response = down_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] != "ok"
