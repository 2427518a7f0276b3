"""The `flask` commands of the auth service (unit, SQLite)."""

from __future__ import annotations

import sqlalchemy as sa

from services.auth import registration
from services.auth.api import log_in
from services.auth.keys import key_files
from services.auth.models import Outbox, User, db
from services.auth.tests.conftest import PASSWORD, deps_of, dispose, make_app


def login(app, email):
    with app.app_context():
        return log_in(
            session=db.session(), deps=deps_of(app), email=email, password=PASSWORD, client_ip="::1"
        )


def test_create_admin_prompts_for_the_password_and_creates_an_admin(sqlite_app):
    runner = sqlite_app.test_cli_runner()
    result = runner.invoke(
        args=["create-admin", "--email", "Root@Example.com"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert "admin root@example.com created" in result.output
    assert login(sqlite_app, "root@example.com").access_token
    with sqlite_app.app_context():
        assert db.session.scalar(sa.select(User.role)) == "admin"


def test_create_admin_refuses_a_taken_email_and_a_weak_password(sqlite_app):
    runner = sqlite_app.test_cli_runner()
    args = ["create-admin", "--email", "root@example.com", "--password"]
    assert runner.invoke(args=[*args, PASSWORD]).exit_code == 0
    taken = runner.invoke(args=[*args, PASSWORD])
    assert taken.exit_code == 1 and "already exists" in taken.output
    weak = runner.invoke(
        args=["create-admin", "--email", "b@example.com", "--password", "password"]
    )
    assert weak.exit_code == 1 and "too common" in weak.output


def test_ensure_admin_uses_the_bootstrap_settings_and_is_idempotent(tmp_path, keys_dir):
    app = make_app(
        f"sqlite:///{tmp_path / 'auth.db'}",
        keys_dir,
        AUTH_BOOTSTRAP_ADMIN_EMAIL="boss@example.com",
        AUTH_BOOTSTRAP_ADMIN_PASSWORD=PASSWORD,
    )
    runner = app.test_cli_runner()
    first = runner.invoke(args=["prepare"])
    assert first.exit_code == 0, first.output
    assert "admin boss@example.com created" in first.output
    again = runner.invoke(args=["ensure-admin"])
    assert "admin boss@example.com present" in again.output
    assert runner.invoke(args=["prepare"]).exit_code == 0  # a restart changes nothing
    with app.app_context():
        (admin,) = db.session.scalars(sa.select(User)).all()
        # The operator chose the address: verified from the start, so it receives its mail.
        assert admin.email_verified
        events = db.session.scalars(sa.select(Outbox.type).order_by(Outbox.id)).all()
        assert events == ["user.registered", "user.email_verified"]
    dispose(app)


def test_a_start_with_a_users_address_as_bootstrap_admin_refuses_in_one_line(tmp_path, keys_dir):
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    first = make_app(url, keys_dir)
    assert first.test_cli_runner().invoke(args=["prepare"]).exit_code == 0
    with first.app_context():
        registration.register_user(
            session=db.session(),
            deps=deps_of(first),
            email="admin@example.com",
            password=PASSWORD,
            name="Early bird",
        )
        db.session.commit()
    dispose(first)
    app = make_app(
        url,
        keys_dir,
        AUTH_BOOTSTRAP_ADMIN_EMAIL="admin@example.com",
        AUTH_BOOTSTRAP_ADMIN_PASSWORD="the operator's own passphrase",
    )
    result = app.test_cli_runner().invoke(args=["prepare"])
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert "admin@example.com" in line and "not an admin" in line
    with app.app_context():
        user = db.session.scalar(sa.select(User))
        assert (user.role, user.is_active) == ("user", True)
    assert login(app, "admin@example.com").access_token  # still their password
    dispose(app)


def test_ensure_admin_without_settings_says_so(sqlite_app):
    result = sqlite_app.test_cli_runner().invoke(args=["ensure-admin"])
    assert result.exit_code == 0 and "unset" in result.output


def test_keys_commands_ensure_rotate_and_list(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'auth.db'}", tmp_path / "keys")
    runner = app.test_cli_runner()
    (first,) = deps_of(app).keys.kids  # the test run makes a dev key at start-up
    assert first in runner.invoke(args=["keys", "ensure"]).output
    rotated = runner.invoke(args=["keys", "rotate"])
    assert rotated.exit_code == 0
    assert len(key_files(tmp_path / "keys")) == 2
    newest = deps_of(app).keys.signing_key().kid
    assert newest != first and newest in rotated.output
    listing = runner.invoke(args=["keys", "list"]).output.splitlines()
    assert [line.split()[0] for line in listing] == [first, newest]
