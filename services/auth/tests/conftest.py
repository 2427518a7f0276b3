"""Fixtures of the auth tests: apps on SQLite (unit) or the real PostgreSQL (integration).

Integration tests share one PostgreSQL database per session, migrated once with the
real migrations and truncated before each test. Argon2 runs at minimal cost here; the
production defaults are asserted separately (test_passwords.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from services.auth import create_app
from services.auth.keys import ensure_key
from services.auth.models import Outbox, db
from services.auth.services import AuthDeps
from shared.config import Env

ISSUER = "https://auth.test/api/v1/auth"
AUDIENCE = "suite-test"
PASSWORD = "correct horse battery staple"
FAST_ARGON2 = {"AUTH_ARGON2_TIME_COST": 1, "AUTH_ARGON2_MEMORY_KIB": 1024}
TABLES = ("refresh_tokens", "email_verifications", "login_failures", "outbox", "users")


def make_env(**settings: str) -> Env:
    """A test-run environment (APP_ENV=test) with our issuer/audience and `settings` on top."""
    base = {
        "APP_ENV": "test",
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
    }
    return Env({**base, **settings})


def make_app(
    database_url: str, keys_dir: Path, *, amqp_url: str | None = None, **config: Any
) -> Flask:
    """An auth app for tests on `database_url` with its keys in `keys_dir`."""
    env = make_env(
        AUTH_DATABASE_URL=database_url,
        VAR_DIR=str(keys_dir.parent),
        **({"AMQP_URL": amqp_url} if amqp_url else {}),
    )
    overrides = {
        "TESTING": True,
        "AUTH_SIGNING_KEYS_DIR": str(keys_dir),
        "AUTH_KEYS_RELOAD_SECONDS": 0,
        **FAST_ARGON2,
        **config,
    }
    return create_app(overrides, env=env)


def migrate(app: Flask) -> None:
    """Run the real migrations against the app's database."""
    with app.app_context():
        upgrade()


def dispose(app: Flask) -> None:
    """Close every pooled connection of the app (before its database is dropped)."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def truncate(app: Flask) -> None:
    """Empty every table of the auth database."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                db.session.execute(sa.text(f"DELETE FROM {table}"))
        db.session.commit()


class FakeClock:
    """A clock the tests move by hand (throttle windows, token expiry)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += timedelta(seconds=seconds)


class AuthActions:
    """What a client of the API does, in one line per step."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def register(self, email: str = "ada@example.com", password: str = PASSWORD, **extra: Any):
        """POST /register."""
        body = {"email": email, "password": password, "name": extra.pop("name", "Ada")}
        return self.client.post("/api/v1/auth/register", json={**body, **extra})

    def login(self, email: str = "ada@example.com", password: str = PASSWORD, **kwargs: Any):
        """POST /login."""
        return self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}, **kwargs
        )

    def tokens(self, email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
        """Log in and return the token pair (asserting success)."""
        response = self.login(email, password)
        assert response.status_code == 200, response.get_json()
        return dict(response.get_json())

    def signup(self, email: str = "ada@example.com", password: str = PASSWORD) -> dict[str, Any]:
        """Register and log in; returns the tokens plus the user under "user"."""
        registered = self.register(email, password)
        assert registered.status_code == 202, registered.get_json()
        tokens = self.tokens(email, password)
        return {**tokens, "user": self.me(tokens["access_token"]).get_json()}

    def verify(self, token: str):
        """POST /verify-email."""
        return self.client.post("/api/v1/auth/verify-email", json={"token": token})

    def refresh(self, refresh_token: str):
        """POST /refresh."""
        return self.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    def me(self, access_token: str):
        """GET /me with a bearer token."""
        return self.client.get("/api/v1/auth/me", headers=bearer(access_token))


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def verification_events(app: Flask, email: str | None = None) -> list[dict[str, Any]]:
    """The data of every `user.verification_requested` in the outbox (what the mail carries)."""
    with app.app_context():
        rows = db.session.scalars(
            sa.select(Outbox.payload)
            .where(Outbox.type == "user.verification_requested")
            .order_by(Outbox.id)
        ).all()
        db.session.rollback()
    data = [dict(payload["data"]) for payload in rows]
    return [item for item in data if email is None or item["email"] == email]


def verification_token(app: Flask, email: str = "ada@example.com") -> str:
    """The token of the newest link mailed to `email` (as a reader of the mail would find it)."""
    url = verification_events(app, email)[-1]["verify_url"]
    (token,) = parse_qs(urlsplit(url).query)["token"]
    return token


def deps_of(app: Flask) -> AuthDeps:
    """The use cases' dependencies of an app."""
    deps: AuthDeps = app.extensions["auth"]
    return deps


# -- unit fixtures: SQLite file per test ---------------------------------------------------


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key directory shared by the unit tests (RSA key generation is the slow part)."""
    directory = tmp_path_factory.mktemp("unit") / "keys"
    ensure_key(directory)
    return directory


@pytest.fixture
def clock() -> FakeClock:
    """A hand-moved clock."""
    return FakeClock()


@pytest.fixture
def sqlite_app(tmp_path: Path, keys_dir: Path, clock: FakeClock) -> Iterator[Flask]:
    """An app on a fresh SQLite file, migrated, with a fake clock."""
    app = make_app(f"sqlite:///{tmp_path / 'auth.db'}", keys_dir)
    migrate(app)
    deps_of(app).clock = clock
    yield app
    dispose(app)


# -- integration fixtures: the real PostgreSQL ----------------------------------------------


@pytest.fixture(scope="session")
def pg_url(database_factory: Callable[[str], str]) -> str:
    """One PostgreSQL database for the session's integration tests."""
    return database_factory("auth_test")


@pytest.fixture(scope="session")
def pg_keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's key directory."""
    return tmp_path_factory.mktemp("auth") / "keys"


@pytest.fixture(scope="session")
def pg_app_session(pg_url: str, pg_keys_dir: Path, amqp_url: str) -> Iterator[Flask]:
    """The session's app on PostgreSQL, migrated once by the real migrations."""
    app = make_app(pg_url, pg_keys_dir, amqp_url=amqp_url)
    migrate(app)
    yield app
    dispose(app)


@pytest.fixture
def pg_app(pg_app_session: Flask) -> Flask:
    """The PostgreSQL app with empty tables."""
    truncate(pg_app_session)
    return pg_app_session


@pytest.fixture
def client(pg_app: Flask) -> FlaskClient:
    """A test client of the PostgreSQL app."""
    return pg_app.test_client()


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """API steps on the PostgreSQL app."""
    return AuthActions(client)
