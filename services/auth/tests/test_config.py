"""Start-up configuration of the auth service (unit)."""

from __future__ import annotations

import pytest

from services.auth import create_app
from services.auth.keys import ensure_key
from shared.config import ConfigError, Env

TESTING = {"TESTING": True}  # keeps the JSON log set-up out of pytest's way
PRODUCTION = {
    "APP_ENV": "production",
    "AUTH_DATABASE_URL": "postgresql://auth:s3cr3t-pw@db.internal/auth",
    "AMQP_URL": "amqp://suite:s3cr3t-pw@mq.internal/%2F",
}


def test_outside_the_local_run_the_app_refuses_to_start_without_a_signing_keys_dir():
    with pytest.raises(ConfigError, match="AUTH_SIGNING_KEYS_DIR must be set"):
        create_app(TESTING, env=Env(PRODUCTION))


def test_outside_the_local_run_a_missing_keys_directory_is_refused(tmp_path):
    env = Env({**PRODUCTION, "AUTH_SIGNING_KEYS_DIR": str(tmp_path / "typo")})
    with pytest.raises(ConfigError, match="does not exist"):
        create_app(TESTING, env=env)


def test_outside_the_local_run_argon2_below_the_owasp_floor_is_refused(tmp_path):
    env = Env(
        {**PRODUCTION, "AUTH_SIGNING_KEYS_DIR": str(tmp_path), "AUTH_ARGON2_MEMORY_KIB": "4096"}
    )
    with pytest.raises(ConfigError, match="OWASP"):
        create_app(TESTING, env=env)


def test_outside_the_local_run_a_bootstrap_admin_needs_a_real_password(tmp_path):
    env = Env(
        {
            **PRODUCTION,
            "AUTH_SIGNING_KEYS_DIR": str(tmp_path),
            "AUTH_BOOTSTRAP_ADMIN_EMAIL": "root@example.com",
            "AUTH_BOOTSTRAP_ADMIN_PASSWORD": "changeme",
        }
    )
    with pytest.raises(ConfigError, match="placeholder"):
        create_app(TESTING, env=env)


def test_in_production_the_app_starts_with_a_key_and_never_makes_one(tmp_path):
    key = ensure_key(tmp_path)
    app = create_app(
        {"TESTING": True}, env=Env({**PRODUCTION, "AUTH_SIGNING_KEYS_DIR": str(tmp_path)})
    )
    assert app.extensions["auth"].keys.kids == [key.kid]

    empty = tmp_path / "empty"
    empty.mkdir()
    app = create_app(
        {"TESTING": True}, env=Env({**PRODUCTION, "AUTH_SIGNING_KEYS_DIR": str(empty)})
    )
    assert app.extensions["auth"].keys.kids == []  # not ready: /readyz reports signing_key


def test_the_local_run_defaults_to_var_keys_and_creates_a_dev_key(tmp_path):
    app = create_app(TESTING, env=Env({"APP_ENV": "local", "VAR_DIR": str(tmp_path)}))
    assert app.config["AUTH_SIGNING_KEYS_DIR"] == str(tmp_path / "keys")
    assert len(app.extensions["auth"].keys.kids) == 1
    assert app.config["AUTH_ACCESS_TOKEN_TTL_SECONDS"] == 900


def test_a_day_long_token_with_a_17_minute_revocation_window_is_refused_at_start_up(tmp_path):
    env = Env(
        {
            "APP_ENV": "local",
            "VAR_DIR": str(tmp_path),
            "AUTH_ACCESS_TOKEN_TTL_SECONDS": str(24 * 3600),
            "GATEWAY_REVOCATION_TTL_SECONDS": str(17 * 60),
        }
    )
    with pytest.raises(ConfigError, match="GATEWAY_REVOCATION_TTL_SECONDS=1020"):
        create_app(TESTING, env=env)


def test_the_revocation_window_follows_a_longer_token_lifetime_when_not_set(tmp_path):
    env = Env(
        {"APP_ENV": "local", "VAR_DIR": str(tmp_path), "AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200"}
    )
    app = create_app(TESTING, env=env)
    assert app.config["GATEWAY_REVOCATION_TTL_SECONDS"] >= 7200 + 30
    assert app.extensions["token_verifier"].max_lifetime == 7200
