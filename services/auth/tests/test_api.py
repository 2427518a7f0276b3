"""The HTTP contract of the auth service against the real PostgreSQL (integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.auth import registration
from services.auth.models import EmailVerification, Outbox, db
from services.auth.tests.conftest import (
    PASSWORD,
    bearer,
    deps_of,
    verification_events,
    verification_token,
)
from shared.db import utcnow

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def make_admin(app, email="root@example.com"):
    """An admin created the way the CLI does it."""
    with app.app_context():
        registration.create_admin(
            session=db.session(), deps=deps_of(app), email=email, password=PASSWORD, name="Root"
        )
        db.session.commit()


def test_register_answers_202_and_no_secret(auth):
    response = auth.register("  Ada@Example.com ")
    assert response.status_code == 202
    body = response.get_json()
    assert body["email"] == "ada@example.com"
    assert set(body) == {"email", "detail"}
    assert response.headers["X-Request-ID"]


def test_registering_a_taken_address_answers_exactly_like_a_new_one(auth, pg_app):
    first = auth.register("ada@example.com")
    taken = auth.register("ADA@example.com", password="another fine passphrase", name="Eve")
    new = auth.register("grace@example.com", name="Grace")
    assert first.status_code == taken.status_code == new.status_code == 202
    assert taken.get_json() == first.get_json()
    assert taken.get_json()["detail"] == new.get_json()["detail"]
    assert set(taken.headers.keys()) == set(new.headers.keys())
    # The owner of the taken address is warned; nobody got a second link or account.
    with pg_app.app_context():
        types = db.session.scalars(sa.select(Outbox.type).order_by(Outbox.id)).all()
    assert types == [
        "user.registered",
        "user.verification_requested",
        "user.registration_attempted",
        "user.registered",
        "user.verification_requested",
    ]
    assert [e["email"] for e in verification_events(pg_app)] == [
        "ada@example.com",
        "grace@example.com",
    ]
    # The owner's password still works; the second registrant's does not.
    assert auth.login("ada@example.com").status_code == 200
    assert auth.login("ada@example.com", "another fine passphrase").status_code == 401


@pytest.mark.parametrize("name", ["Ada\nBcc: all@example.com", "Ada\r", "Ada\tL", "Ada\u2028x"])
def test_a_name_with_a_line_break_or_control_character_is_422(auth, name):
    response = auth.register(name=name)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert "name" in response.get_json()["errors"]


def test_the_mailed_link_verifies_the_address_once(auth, pg_app):
    auth.register()
    tokens = auth.tokens()  # an unverified account may log in; it only receives no mail
    assert auth.me(tokens["access_token"]).get_json()["email_verified"] is False
    token = verification_token(pg_app)

    verified = auth.client.get(f"/api/v1/auth/verify-email?token={token}")
    assert verified.status_code == 200
    assert verified.get_json()["email_verified"] is True
    assert auth.me(tokens["access_token"]).get_json()["email_verified"] is True
    with pg_app.app_context():
        events = db.session.scalars(
            sa.select(Outbox.payload).where(Outbox.type == "user.email_verified")
        ).all()
    assert [event["data"] for event in events] == [
        {"user_id": verified.get_json()["id"], "version": 2}
    ]

    again = auth.verify(token)
    assert again.status_code == 400
    assert again.mimetype == PROBLEM


def test_the_link_is_stored_only_as_a_hash(auth, pg_app):
    auth.register()
    token = verification_token(pg_app)
    with pg_app.app_context():
        (stored,) = db.session.scalars(sa.select(EmailVerification.token_hash)).all()
    assert stored != token and stored == registration.hash_verification_token(token)


def test_an_unknown_token_is_400_and_an_expired_one_410(auth, pg_app):
    auth.register()
    unknown = auth.verify("not-a-token")
    assert unknown.status_code == 400 and unknown.mimetype == PROBLEM
    deps_of(pg_app).clock = lambda: datetime.now(UTC) + timedelta(days=2)
    try:
        expired = auth.verify(verification_token(pg_app))
    finally:
        deps_of(pg_app).clock = utcnow
    assert expired.status_code == 410
    assert expired.mimetype == PROBLEM
    assert auth.verify("").status_code == 422


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 8"), ("x" * 129, "at most 128"), ("password123", "too common")],
)
def test_a_weak_password_is_422_with_a_field_error(auth, password, message):
    response = auth.register(password=password)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert message in response.get_json()["errors"]["password"][0]


def test_a_password_equal_to_the_email_is_422(auth):
    response = auth.register("ada.lovelace@example.com", password="Ada.Lovelace@example.com")
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert "email address" in response.get_json()["errors"]["password"][0]


def test_an_invalid_email_is_422(auth):
    response = auth.register("not-an-email")
    assert response.status_code == 422
    assert "email" in response.get_json()["errors"]


def test_login_returns_a_bearer_token_pair(auth):
    auth.register()
    response = auth.login("ADA@example.com ")
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["access_token"].count(".") == 2
    assert len(body["refresh_token"]) >= 43


def test_responses_carrying_tokens_are_never_stored_by_a_cache(auth):
    auth.register()
    login = auth.login()
    refreshed = auth.refresh(login.get_json()["refresh_token"])
    for response in (login, refreshed):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"


def test_unknown_email_and_wrong_password_get_the_same_401(auth):
    auth.register()
    unknown = auth.login("nobody@example.com")
    wrong = auth.login(password="wrong " + PASSWORD)
    assert unknown.status_code == wrong.status_code == 401
    bodies = [r.get_json() for r in (unknown, wrong)]
    for body in bodies:
        body.pop("request_id")
    assert bodies[0] == bodies[1]
    assert bodies[0]["detail"] == "Invalid email or password."


def test_failed_logins_are_throttled_with_429_and_retry_after(auth):
    auth.register()
    statuses = [auth.login(password="wrong " + PASSWORD).status_code for _ in range(5)]
    assert statuses == [401] * 5
    response = auth.login()
    assert response.status_code == 429
    assert response.mimetype == PROBLEM
    assert 0 < int(response.headers["Retry-After"]) <= 901
    # The throttle is per client address + email.
    assert auth.login(environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code == 200


def test_me_returns_the_token_owner(auth):
    tokens = auth.signup()
    response = auth.me(tokens["access_token"])
    assert response.status_code == 200
    assert response.get_json() == tokens["user"]


def test_a_user_changes_their_name_and_the_change_is_published(auth, client, pg_app):
    tokens = auth.signup()
    response = client.patch(
        "/api/v1/auth/me", json={"name": " Ada Lovelace "}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 200
    assert response.get_json()["name"] == "Ada Lovelace"
    assert auth.me(tokens["access_token"]).get_json()["name"] == "Ada Lovelace"
    with pg_app.app_context():
        [*_, row] = db.session.scalars(sa.select(Outbox).order_by(Outbox.id))
        assert row.type == "user.profile_changed"
        assert row.payload["data"] == {
            "user_id": tokens["user"]["id"],
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "version": 2,
        }


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "Ada", "email": "eve@example.com"}, {"name": 7}]
)
def test_a_profile_patch_takes_only_a_non_empty_name(auth, client, body):
    tokens = auth.signup()
    response = client.patch("/api/v1/auth/me", json=body, headers=bearer(tokens["access_token"]))
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert auth.me(tokens["access_token"]).get_json()["email"] == "ada@example.com"


def test_me_without_a_token_is_401(client):
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.mimetype == PROBLEM


def test_refresh_rotates_the_pair(auth):
    tokens = auth.signup()
    response = auth.refresh(tokens["refresh_token"])
    assert response.status_code == 200
    fresh = response.get_json()
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert auth.me(fresh["access_token"]).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_its_family(auth):
    tokens = auth.signup()
    second = auth.refresh(tokens["refresh_token"]).get_json()
    third = auth.refresh(second["refresh_token"]).get_json()
    replay = auth.refresh(tokens["refresh_token"])
    assert replay.status_code == 401
    assert replay.mimetype == PROBLEM
    # The newest token of the family stops working too.
    assert auth.refresh(third["refresh_token"]).status_code == 401


def test_logout_revokes_the_refresh_token(auth, client):
    tokens = auth.signup()
    response = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 204
    assert auth.refresh(tokens["refresh_token"]).status_code == 401


def test_logout_needs_an_access_token(auth, client):
    tokens = auth.signup()
    response = client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 401
    assert auth.refresh(tokens["refresh_token"]).status_code == 200


def test_logout_cannot_revoke_someone_elses_session(auth, client):
    ada = auth.signup()
    bob = auth.signup("bob@example.com")
    response = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": ada["refresh_token"]},
        headers=bearer(bob["access_token"]),
    )
    assert response.status_code == 204
    assert auth.refresh(ada["refresh_token"]).status_code == 200


def test_both_jwks_addresses_publish_the_signing_key(client, pg_app):
    kid = deps_of(pg_app).keys.signing_key().kid
    for path in ("/api/v1/auth/jwks.json", "/.well-known/jwks.json"):
        response = client.get(path)
        assert response.status_code == 200
        assert kid in [k["kid"] for k in response.get_json()["keys"]]
        assert "max-age" in response.headers["Cache-Control"]


def test_admins_list_users_in_pages(auth, client, pg_app):
    make_admin(pg_app)
    admin = auth.tokens("root@example.com")
    for i in range(3):
        assert auth.register(f"user{i}@example.com").status_code == 202
    headers = bearer(admin["access_token"])
    first = client.get("/api/v1/auth/users?limit=2", headers=headers)
    assert first.status_code == 200
    page = first.get_json()
    assert [u["email"] for u in page["items"]] == ["user2@example.com", "user1@example.com"]
    second = client.get(f"/api/v1/auth/users?limit=2&cursor={page['next_cursor']}", headers=headers)
    emails = [u["email"] for u in second.get_json()["items"]]
    assert emails == ["user0@example.com", "root@example.com"]
    assert second.get_json()["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "cursor=zzz", "x=1"])
def test_bad_list_queries_are_422(auth, client, pg_app, query):
    make_admin(pg_app)
    admin = auth.tokens("root@example.com")
    response = client.get(f"/api/v1/auth/users?{query}", headers=bearer(admin["access_token"]))
    assert response.status_code == 422
    assert response.mimetype == PROBLEM


def test_non_admins_get_403_on_user_administration(auth, client):
    ada = auth.signup()
    headers = bearer(ada["access_token"])
    assert client.get("/api/v1/auth/users", headers=headers).status_code == 403
    response = client.patch(
        f"/api/v1/auth/users/{ada['user']['id']}", json={"role": "admin"}, headers=headers
    )
    assert response.status_code == 403
    assert response.mimetype == PROBLEM


def test_an_admin_deactivates_a_user_who_then_can_neither_log_in_nor_refresh(auth, client, pg_app):
    make_admin(pg_app)
    admin = auth.tokens("root@example.com")
    ada = auth.signup()
    response = client.patch(
        f"/api/v1/auth/users/{ada['user']['id']}",
        json={"active": False},
        headers=bearer(admin["access_token"]),
    )
    assert response.status_code == 200
    assert response.get_json()["active"] is False
    assert auth.login().status_code == 401
    assert auth.refresh(ada["refresh_token"]).status_code == 401
    assert auth.me(ada["access_token"]).status_code == 401


def test_an_admin_promotes_a_user(auth, client, pg_app):
    make_admin(pg_app)
    admin = auth.tokens("root@example.com")
    ada = auth.signup()
    response = client.patch(
        f"/api/v1/auth/users/{ada['user']['id']}",
        json={"role": "admin"},
        headers=bearer(admin["access_token"]),
    )
    assert response.get_json()["role"] == "admin"
    promoted = auth.tokens()
    assert (
        client.get("/api/v1/auth/users", headers=bearer(promoted["access_token"])).status_code
        == 200
    )


@pytest.mark.parametrize("change", [{"role": "user"}, {"active": False}])
def test_the_last_active_admin_cannot_lock_the_suite_out(auth, client, pg_app, change):
    make_admin(pg_app)
    admin = auth.tokens("root@example.com")
    me = auth.me(admin["access_token"]).get_json()
    response = client.patch(
        f"/api/v1/auth/users/{me['id']}", json=change, headers=bearer(admin["access_token"])
    )
    assert response.status_code == 409
    assert response.mimetype == PROBLEM


def test_patching_an_unknown_user_is_404(auth, client, pg_app):
    make_admin(pg_app)
    admin = auth.tokens("root@example.com")
    response = client.patch(
        "/api/v1/auth/users/00000000-0000-0000-0000-000000000000",
        json={"role": "admin"},
        headers=bearer(admin["access_token"]),
    )
    assert response.status_code == 404
    assert response.mimetype == PROBLEM


def test_health_and_openapi(client):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"] == {"database": "ok", "broker": "ok", "signing_key": "ok"}
    spec = client.get("/openapi.json").get_json()
    assert "/api/v1/auth/login" in spec["paths"]
