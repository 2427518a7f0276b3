"""No request reaches a service with an identity the gateway did not verify."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import pytest

import shared.tokens
from gateway.tests.conftest import KEY, bearer, jwk, token
from tests.support import rsa_private_key

OTHER_KEY = rsa_private_key()

BAD_TOKENS = {
    "forged signature": lambda: token(key=OTHER_KEY),
    "expired": lambda: token(iat=int(time.time()) - 4000, exp=int(time.time()) - 3600),
    "another audience": lambda: token(aud="someone-else"),
    "another issuer": lambda: token(iss="https://evil.test"),
    "unknown key id": lambda: token(kid="who-knows"),
    "no subject": lambda: token(sub=None),
    "garbage": lambda: "not.a.token",
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_a_bad_token_is_refused_and_never_reaches_a_service(client, upstream, kind):
    response = client.get(
        "/api/v1/orders", headers={"Authorization": f"Bearer {BAD_TOKENS[kind]()}"}
    )

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert upstream.received == []


def test_a_protected_request_without_a_token_is_refused(client, upstream):
    response = client.get("/api/v1/orders", headers={"X-User-Id": "admin-1"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert upstream.received == []


MADE_UP_IDENTITIES = {
    "X-User-Id": "admin-1",
    "X-Forwarded-User": "admin-1",
    "X-Auth-Request-User": "admin-1",
    "X-Roles": "admin",
    "X-User-Roles": "admin",
    "Remote-User": "admin-1",
    "X-Uid": "admin-1",
    "X-Subject": "admin-1",
    "X-Account-Id": "acct-1",
    "X-Tenant-Id": "tenant-1",
    "X-Forwarded-Sub": "admin-1",
    "X-Original-User": "admin-1",
    "X-Is-Admin": "true",
    "X-Real-IP": "10.0.0.1",
    "Forwarded": "for=10.0.0.1",
    "Cookie": "session=someone-elses",
}


def test_no_identity_a_client_made_up_reaches_a_service(client, upstream):
    headers = {**bearer("user-42"), **MADE_UP_IDENTITIES}

    response = client.get("/api/v1/orders/o-1", headers=headers)

    assert response.status_code == 200
    (seen,) = upstream.received
    assert seen.header("X-User-Id") == "user-42"
    for name in MADE_UP_IDENTITIES.keys() - {"X-User-Id"}:
        assert seen.header(name) is None, name
    # The service verifies the token itself: it gets it untouched.
    assert seen.header("Authorization") == headers["Authorization"]


def test_only_the_headers_a_client_needs_are_forwarded(client, upstream):
    sent = {
        "Accept": "application/json",
        "Accept-Language": "de",
        "Accept-Encoding": "gzip",
        "Content-Type": "application/json",
        "Idempotency-Key": "key-1",
        "If-Match": '"v1"',
        "If-None-Match": '"v0"',
        "User-Agent": "shop-app/1.0",
        "tracestate": "vendor=1",
        "X-Something-New": "1",
    }

    client.post("/api/v1/orders", data=b"{}", headers={**bearer("user-42"), **sent})

    (seen,) = upstream.received
    for name, value in sent.items():
        if name != "X-Something-New":
            assert seen.header(name) == value, name
    passed_on = {name.lower() for name in sent if name != "X-Something-New"} | {"authorization"}
    set_by_us = {"host", "content-length", "x-request-id", "traceparent", "x-user-id"} | {
        f"x-forwarded-{part}" for part in ("for", "proto", "host")
    }
    assert {name.lower() for name in seen.headers} == passed_on | set_by_us


def test_a_public_request_carries_no_user_id_at_all(client, upstream):
    response = client.post(
        "/api/v1/auth/login",
        json={"email": "a@example.com", "password": "x"},
        headers={"X-User-Id": "admin-1", "X-Auth-User": "admin-1"},
    )

    assert response.status_code == 200
    (seen,) = upstream.received
    assert seen.header("X-User-Id") is None
    assert seen.header("X-Auth-User") is None


def test_a_public_path_with_another_method_still_needs_a_token(client, upstream):
    response = client.delete("/api/v1/auth/register")

    assert response.status_code == 401
    assert upstream.received == []


def test_dot_segments_cannot_turn_a_public_path_into_a_protected_one(client, upstream):
    response = client.post("/api/v1/auth/login/../../orders", json={})

    assert response.status_code == 404
    assert upstream.received == []


def test_the_well_known_jwks_is_public_and_served_by_auth(client, upstream):
    response = client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.json["keys"][0]["kid"] == jwk(KEY)["kid"]
    assert upstream.jwks_paths == ["/api/v1/auth/jwks.json"]


def test_random_key_ids_cost_auth_one_jwks_fetch_per_ten_seconds(
    make_gateway, upstream, monkeypatch
):
    # The JWKS cache's clock, set by hand: ten seconds pass without the test waiting them.
    now = [time.monotonic()]
    monkeypatch.setattr(
        shared.tokens, "time", SimpleNamespace(monotonic=lambda: now[0], time=time.time)
    )
    client = make_gateway(remote_jwks=True).test_client()

    def forged() -> int:
        headers = bearer(kid=f"forged-{uuid.uuid4().hex}")
        return client.get("/api/v1/orders", headers=headers).status_code

    statuses = {forged() for _ in range(100)}

    assert statuses == {401}
    assert upstream.jwks_fetches == 1
    # That one fetch brought the real key: valid tokens work without asking auth again.
    assert client.get("/api/v1/orders", headers=bearer()).status_code == 200
    assert upstream.jwks_fetches == 1
    now[0] += 9.9
    assert forged() == 401
    assert upstream.jwks_fetches == 1
    # Once the window has passed, an unknown key id is looked up again (a rotated key).
    now[0] += 0.2
    assert forged() == 401
    assert upstream.jwks_fetches == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", "/api/v1/auth/jwks.json"),
        ("GET", "/api/v1/products"),
        ("HEAD", "/api/v1/products"),
        ("GET", "/api/v1/products?limit=5&active=false"),
    ],
)
def test_public_routes_reach_the_service_without_a_token(client, upstream, method, path):
    response = client.open(path, method=method, json={} if method == "POST" else None)

    assert response.status_code == 200
    assert len(upstream.received) + len(upstream.jwks_paths) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/me"),
        ("PATCH", "/api/v1/auth/users/u-1"),
        ("GET", "/api/v1/orders"),
        ("POST", "/api/v1/orders/o-1/cancel"),
        ("POST", "/api/v1/products"),
        ("PATCH", "/api/v1/products/BOOK-1"),
        ("GET", "/api/v1/products/BOOK-1"),
        ("GET", "/api/v1/notifications"),
        ("DELETE", "/api/v1/notifications/webhooks/w-1"),
    ],
)
def test_everything_else_needs_a_token(client, upstream, method, path):
    response = client.open(path, method=method, json={} if method != "GET" else None)

    assert response.status_code == 401
    assert upstream.received == []
