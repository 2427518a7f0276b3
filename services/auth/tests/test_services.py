"""Use cases on SQLite with a hand-moved clock (unit): the rules without HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import extract_parameters

from services.auth import registration, services, sessions, throttle, users
from services.auth.api import log_in
from services.auth.models import LoginFailure, Outbox, RefreshToken, User, db
from services.auth.passwords import Passwords
from services.auth.services import AuthDeps
from services.auth.sessions import INVALID_CREDENTIALS
from services.auth.tests.conftest import PASSWORD, FakeClock, deps_of
from shared.errors import (
    ConflictError,
    ForbiddenError,
    TooManyRequestsError,
    UnauthorizedError,
    UnprocessableError,
)
from shared.uow import commit_forbidden, unit_of_work

IP = "203.0.113.7"


class Ctx:
    """The session and dependencies of one test, with short-hands for the use cases."""

    def __init__(self, session: Any, deps: AuthDeps, clock: FakeClock) -> None:
        self.session, self.deps, self.clock = session, deps, clock

    def do(self, use_case: Any, **kwargs: Any) -> Any:
        """Run a use case as an entry point does: in a transaction committed on success."""
        with unit_of_work(self.session):
            return use_case(**kwargs)

    def register(self, email: str = "ada@example.com", password: str = PASSWORD) -> User:
        self.do(
            registration.register_user,
            session=self.session,
            deps=self.deps,
            email=email,
            password=password,
            name="Ada",
        )
        user = self.session.scalar(
            sa.select(User).where(User.email == services.normalize_email(email))
        )
        assert user is not None
        return user

    def admin(self, email: str = "root@example.com") -> User:
        return self.do(
            registration.create_admin,
            session=self.session,
            deps=self.deps,
            email=email,
            password=PASSWORD,
            name="Root",
        )

    def login(self, email: str = "ada@example.com", password: str = PASSWORD, ip: str = IP):
        return log_in(
            session=self.session, deps=self.deps, email=email, password=password, client_ip=ip
        )

    def refresh(self, token: str):
        with unit_of_work(self.session, commit_on=(UnauthorizedError,)):
            return sessions.refresh_tokens(
                session=self.session, deps=self.deps, refresh_token=token
            )

    def outbox(self) -> list[Outbox]:
        return list(self.session.scalars(sa.select(Outbox).order_by(Outbox.id)))


@pytest.fixture
def ctx(sqlite_app, clock) -> Iterator[Ctx]:
    with sqlite_app.app_context():
        yield Ctx(db.session(), deps_of(sqlite_app), clock)


def test_registering_stores_the_normalised_email_and_records_the_user_and_its_link(ctx):
    user = ctx.register("  Ada.Lovelace@Example.COM ")
    assert user.email == "ada.lovelace@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert user.email_verified_at is None
    registered, link = ctx.outbox()
    assert registered.type == "user.registered" and registered.sent_at is None
    assert registered.payload["source"] == "/auth"
    assert registered.payload["subject"] == str(user.id)
    assert registered.payload["data"] == {
        "user_id": str(user.id),
        "email": "ada.lovelace@example.com",
        "name": "Ada",
        "version": 1,
    }
    assert link.type == "user.verification_requested"
    data = link.payload["data"]
    assert set(data) == {"user_id", "email", "name", "verify_url", "expires_at"}
    assert data["email"] == "ada.lovelace@example.com"
    assert data["verify_url"].startswith("https://auth.test/api/v1/auth/verify-email?token=")
    expires_at = datetime.fromisoformat(data["expires_at"])
    assert expires_at == ctx.clock.now + timedelta(hours=24)


def test_a_taken_email_in_another_spelling_changes_nothing_but_warns_its_owner(ctx):
    ada = ctx.register("ada@example.com")
    registration.register_user(
        session=ctx.session,
        deps=ctx.deps,
        email=" ADA@example.com",
        password="another fine passphrase",
        name="Eve",
    )
    ctx.session.commit()
    assert ctx.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
    warning = ctx.outbox()[-1]
    assert warning.type == "user.registration_attempted"
    assert warning.payload["data"] == {"user_id": str(ada.id)}
    assert len(ctx.outbox()) == 3


def test_the_unique_index_turns_a_registration_race_into_the_same_answer(ctx, monkeypatch):
    ctx.register("ada@example.com")
    # Skip the early check, as a request racing the first one would.
    real_scalar = ctx.session.scalar
    monkeypatch.setattr(ctx.session, "scalar", lambda *a, **k: None)
    answer = registration.register_user(
        session=ctx.session, deps=ctx.deps, email="ada@example.com", password=PASSWORD, name="X"
    )
    ctx.session.commit()
    monkeypatch.setattr(ctx.session, "scalar", real_scalar)
    assert answer == registration.Registration(email="ada@example.com")
    assert ctx.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
    assert len(ctx.outbox()) == 2


def test_an_admin_made_by_the_cli_is_verified_and_a_taken_address_is_a_conflict(ctx):
    admin = ctx.admin()
    assert admin.email_verified
    with pytest.raises(ConflictError) as caught:
        ctx.admin()
    assert "email" in caught.value.errors


def test_a_weak_password_is_refused_with_a_field_error(ctx):
    with pytest.raises(UnprocessableError) as caught:
        ctx.register(password="password1")
    assert "too common" in caught.value.errors["password"][0]
    assert ctx.outbox() == []


def test_unknown_email_wrong_password_and_deactivated_account_fail_alike(ctx):
    admin = ctx.admin()
    ada = ctx.register()
    ctx.do(
        users.update_user,
        session=ctx.session,
        deps=ctx.deps,
        actor_id=str(admin.id),
        user_id=ada.id,
        active=False,
    )
    attempts = [("nobody@example.com", PASSWORD), ("root@example.com", "wrong" + PASSWORD)]
    attempts.append(("ada@example.com", PASSWORD))
    for email, password in attempts:
        with pytest.raises(UnauthorizedError) as caught:
            ctx.login(email, password)
        assert caught.value.detail == INVALID_CREDENTIALS


def test_an_unknown_email_still_costs_one_password_verification(ctx, monkeypatch):
    calls = []
    real_verify = ctx.deps.passwords.verify
    monkeypatch.setattr(
        ctx.deps.passwords, "verify", lambda h, p: calls.append(h) or real_verify(h, p)
    )
    ctx.register()
    for email, password in [("nobody@example.com", PASSWORD), ("ada@example.com", "wrong pw")]:
        with pytest.raises(UnauthorizedError):
            ctx.login(email, password)
    assert calls[0] is None  # verified against the dummy hash, as long as a real one
    assert calls[1].startswith("$argon2id$")


def test_the_sixth_failure_in_the_window_is_throttled_until_the_first_one_ages_out(ctx):
    ctx.register()
    for _ in range(5):
        with pytest.raises(UnauthorizedError):
            ctx.login(password="wrong password")
        ctx.clock.advance(10)
    # Even the right password is refused while throttled.
    with pytest.raises(TooManyRequestsError) as caught:
        ctx.login()
    # First failure at t0, now t0+50: it leaves the 15-minute window in 850 s.
    assert caught.value.retry_after == 851
    assert caught.value.headers["Retry-After"] == "851"
    # Another address, or another email, has its own bucket.
    assert ctx.login(ip="198.51.100.1").access_token
    ctx.clock.advance(851)
    assert ctx.login().access_token


def test_a_successful_login_clears_the_failures_of_its_bucket(ctx):
    ctx.register()
    for _ in range(4):
        with pytest.raises(UnauthorizedError):
            ctx.login(password="wrong password")
    ctx.login()
    buckets = ctx.session.scalars(sa.select(LoginFailure.key)).all()
    # Only the account's count across addresses remains (it slows guessing down, see
    # test_throttle.py): the successful attempt itself is not among them.
    assert buckets == [throttle.account_throttle_key("ada@example.com")] * 4


def test_login_rehashes_a_password_made_with_weaker_parameters(ctx):
    user = ctx.register()
    old_hash = user.password_hash
    ctx.deps.passwords = Passwords(time_cost=2, memory_kib=2048, parallelism=1)
    ctx.login()
    ctx.session.refresh(user)
    assert user.password_hash != old_hash
    assert extract_parameters(user.password_hash).memory_cost == 2048
    assert ctx.login().access_token  # the new hash verifies


def test_refresh_rotates_and_a_replayed_token_revokes_the_whole_family(ctx):
    ctx.register()
    first = ctx.login()
    second = ctx.refresh(first.refresh_token)
    third = ctx.refresh(second.refresh_token)
    with pytest.raises(UnauthorizedError):
        ctx.refresh(first.refresh_token)  # replay of a rotated token
    with pytest.raises(UnauthorizedError):
        ctx.refresh(third.refresh_token)  # the newest one died with its family
    other_session = ctx.login()  # a separate login is a separate family
    assert ctx.refresh(other_session.refresh_token).access_token


def test_refresh_tokens_expire(ctx):
    ctx.register()
    pair = ctx.login()
    ctx.clock.advance(ctx.deps.settings.refresh_ttl + 1)
    with pytest.raises(UnauthorizedError):
        ctx.refresh(pair.refresh_token)


def test_stored_refresh_tokens_are_hashes_only(ctx):
    ctx.register()
    pair = ctx.login()
    (row,) = ctx.session.scalars(sa.select(RefreshToken))
    assert row.token_hash == sessions.hash_refresh_token(pair.refresh_token)
    assert pair.refresh_token not in row.token_hash


def test_deactivation_revokes_refresh_tokens_and_records_an_event(ctx):
    admin = ctx.admin()
    ada = ctx.register()
    pair = ctx.login()
    ctx.do(
        users.update_user,
        session=ctx.session,
        deps=ctx.deps,
        actor_id=str(admin.id),
        user_id=ada.id,
        active=False,
    )
    with pytest.raises(UnauthorizedError):
        ctx.refresh(pair.refresh_token)
    with pytest.raises(UnauthorizedError):
        ctx.login()
    assert [row.type for row in ctx.outbox()] == [
        "user.registered",  # the admin, made by the CLI: verified, no link
        "user.email_verified",
        "user.registered",
        "user.verification_requested",
        "user.deactivated",
    ]
    assert ctx.outbox()[-1].payload["data"] == {"user_id": str(ada.id), "version": 2}


def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(ctx):
    root = ctx.admin()
    for change in ({"role": "user"}, {"active": False}):
        with pytest.raises(ConflictError):
            ctx.do(
                users.update_user,
                session=ctx.session,
                deps=ctx.deps,
                actor_id=str(root.id),
                user_id=root.id,
                **change,
            )
    second = ctx.admin("second@example.com")
    ctx.do(
        users.update_user,
        session=ctx.session,
        deps=ctx.deps,
        actor_id=str(second.id),
        user_id=root.id,
        role="user",
    )
    with pytest.raises(ConflictError):
        ctx.do(
            users.update_user,
            session=ctx.session,
            deps=ctx.deps,
            actor_id=str(second.id),
            user_id=second.id,
            active=False,
        )


def test_a_demoted_admin_loses_admin_rights_at_once(ctx):
    root = ctx.admin()
    second = ctx.admin("second@example.com")
    ctx.do(
        users.update_user,
        session=ctx.session,
        deps=ctx.deps,
        actor_id=str(root.id),
        user_id=second.id,
        role="user",
    )
    with pytest.raises(ForbiddenError):
        users.list_users(session=ctx.session, actor_id=str(second.id))


def test_the_bootstrap_admin_is_created_once_and_keeps_its_password(ctx):
    user, created = ctx.do(
        registration.ensure_bootstrap_admin,
        session=ctx.session,
        deps=ctx.deps,
        email="Boss@Example.com",
        password=PASSWORD,
        name="B",
    )
    assert created and user.role == "admin"
    again, created = ctx.do(
        registration.ensure_bootstrap_admin,
        session=ctx.session,
        deps=ctx.deps,
        email="boss@example.com",
        password="another long passphrase",
        name="B",
    )
    assert not created and again.id == user.id
    assert ctx.login("boss@example.com", PASSWORD).access_token


def test_the_bootstrap_admin_never_takes_over_an_existing_account(ctx):
    ada = ctx.register()
    with pytest.raises(registration.BootstrapAccountTaken, match="not an admin"):
        ctx.do(
            registration.ensure_bootstrap_admin,
            session=ctx.session,
            deps=ctx.deps,
            email=ada.email,
            password="the operator's own passphrase",
            name="Ada",
        )
    ctx.session.rollback()
    ctx.session.refresh(ada)
    assert ada.role == "user" and ada.is_active
    assert ctx.login(ada.email, PASSWORD).access_token


def test_a_deactivated_bootstrap_admin_stays_deactivated_at_the_next_start(ctx):
    root = ctx.admin()
    boss, _ = ctx.do(
        registration.ensure_bootstrap_admin,
        session=ctx.session,
        deps=ctx.deps,
        email="boss@example.com",
        password=PASSWORD,
        name="B",
    )
    ctx.do(
        users.update_user,
        session=ctx.session,
        deps=ctx.deps,
        actor_id=str(root.id),
        user_id=boss.id,
        active=False,
    )
    again, created = ctx.do(
        registration.ensure_bootstrap_admin,
        session=ctx.session,
        deps=ctx.deps,
        email="boss@example.com",
        password=PASSWORD,
        name="B",
    )
    assert not created and again.id == boss.id and not again.is_active


def test_users_are_listed_newest_first_in_keyset_pages(ctx):
    admin = ctx.admin()
    for i in range(4):
        ctx.clock.advance(1)
        ctx.register(f"user{i}@example.com")
    # Two users in the same instant: the id breaks the tie without skipping anyone.
    ctx.clock.advance(1)
    ctx.register("same0@example.com")
    ctx.register("same1@example.com")
    seen: list[str] = []
    cursor = None
    while True:
        page = users.list_users(session=ctx.session, actor_id=str(admin.id), limit=2, after=cursor)
        seen += [u.email for u in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 7
    assert seen[-1] == "root@example.com"
    assert set(seen[:2]) == {"same0@example.com", "same1@example.com"}
    assert seen[2:6] == [f"user{i}@example.com" for i in (3, 2, 1, 0)]


def test_access_tokens_carry_the_required_claims(ctx, sqlite_app):
    user = ctx.register()
    pair = ctx.login()
    verifier = sqlite_app.extensions["token_verifier"]
    principal = verifier.verify(pair.access_token)
    assert principal.user_id == str(user.id)
    assert principal.roles == ("user",)
    assert principal.expires_at - principal.issued_at == 900
    assert pair.expires_in == 900


def test_settings_are_frozen(ctx):
    with pytest.raises(AttributeError):
        ctx.deps.settings.access_ttl = 1  # type: ignore[misc]
    assert replace(ctx.deps.settings, access_ttl=1).access_ttl == 1


def test_no_use_case_commits_the_transaction_of_its_caller(ctx):
    """Every use case runs with commits refused; the test, as entry point, commits at the end."""
    on = {"session": ctx.session, "deps": ctx.deps}
    with commit_forbidden(ctx.session):
        root = registration.create_admin(
            session=ctx.session,
            deps=ctx.deps,
            email="root@example.com",
            password=PASSWORD,
            name="R",
        )
        registration.register_user(**on, email="ada@example.com", password=PASSWORD, name="A")
        ada = ctx.session.scalar(sa.select(User).where(User.email == "ada@example.com"))
        attempt = throttle.begin_login(**on, email="ada@example.com", client_ip=IP)
        pair = sessions.finish_login(**on, attempt=attempt, password=PASSWORD)
        pair = sessions.refresh_tokens(**on, refresh_token=pair.refresh_token)
        users.update_profile(**on, user_id=str(ada.id), name="B")
        for change in ({"role": "admin"}, {"active": False}, {"active": True}):
            users.update_user(**on, actor_id=str(root.id), user_id=ada.id, **change)
        sessions.logout(
            session=ctx.session,
            deps=ctx.deps,
            user_id=str(ada.id),
            refresh_token=pair.refresh_token,
        )
        registration.ensure_bootstrap_admin(
            session=ctx.session,
            deps=ctx.deps,
            email="boss@example.com",
            password=PASSWORD,
            name="B",
        )
    ctx.session.commit()
    assert [row.type for row in ctx.outbox()] == [
        "user.registered",
        "user.email_verified",
        "user.registered",
        "user.verification_requested",
        "user.profile_changed",
        "user.role_changed",
        "user.deactivated",
        "user.reactivated",
        "user.registered",
        "user.email_verified",
    ]


def test_each_change_of_a_user_counts_one_version_carried_by_its_event(ctx):
    root = ctx.admin()
    ada = ctx.register()
    ctx.do(
        users.update_profile, session=ctx.session, deps=ctx.deps, user_id=str(ada.id), name="Ann"
    )
    ctx.do(
        users.update_user,
        session=ctx.session,
        deps=ctx.deps,
        actor_id=str(root.id),
        user_id=ada.id,
        role="admin",
        active=False,
    )
    ctx.do(
        users.update_user,
        session=ctx.session,
        deps=ctx.deps,
        actor_id=str(root.id),
        user_id=ada.id,
        active=True,
    )
    # Nothing changes: no version, no event.
    ctx.do(
        users.update_profile, session=ctx.session, deps=ctx.deps, user_id=str(ada.id), name="Ann"
    )

    events = [
        (row.type, row.payload["data"])
        for row in ctx.outbox()
        if row.payload["subject"] == str(ada.id) and row.type != "user.verification_requested"
    ]
    uid = str(ada.id)
    assert events == [
        (
            "user.registered",
            {"user_id": uid, "email": "ada@example.com", "name": "Ada", "version": 1},
        ),
        (
            "user.profile_changed",
            {"user_id": uid, "email": "ada@example.com", "name": "Ann", "version": 2},
        ),
        ("user.role_changed", {"user_id": uid, "role": "admin", "version": 3}),
        ("user.deactivated", {"user_id": uid, "version": 4}),
        ("user.reactivated", {"user_id": uid, "version": 5}),
    ]
    ctx.session.refresh(ada)
    assert ada.version == 5
    assert ctx.login().access_token  # re-activated: may log in again


def test_a_blank_name_is_refused_and_changes_nothing(ctx):
    ada = ctx.register()
    with pytest.raises(UnprocessableError):
        ctx.do(
            users.update_profile,
            session=ctx.session,
            deps=ctx.deps,
            user_id=str(ada.id),
            name="  ",
        )
    assert [row.type for row in ctx.outbox()] == ["user.registered", "user.verification_requested"]


def test_an_admin_name_with_a_line_break_is_refused_too(ctx):
    with pytest.raises(UnprocessableError) as caught:
        registration.create_admin(
            session=ctx.session,
            deps=ctx.deps,
            email="root@example.com",
            password=PASSWORD,
            name="Root\nBcc: all@example.com",
        )
    assert "name" in caught.value.errors
    assert ctx.outbox() == []
