"""The auth service: accounts, passwords, access and refresh tokens, JWKS."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from shared.config import Env

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def create_app(config: Mapping[str, Any] | None = None, *, env: Env | None = None) -> Flask:
    """Build the auth app; `config` overrides settings (tests), `env` replaces os.environ."""
    # Imported here so that importing the package (for the CLI or gunicorn) stays cheap.
    from services.auth import api, cli
    from services.auth.config import auth_config, validate_config
    from services.auth.keys import KeyRing, ensure_key, key_files
    from services.auth.models import db
    from services.auth.passwords import Passwords
    from services.auth.services import AuthDeps, AuthSettings
    from shared.app import create_base_app, init_service
    from shared.tokens import TokenVerifier

    env = env or Env()
    app = create_base_app("auth", __name__, auth_config(env), config, env=env)
    validate_config(app.config, is_local=env.is_local)

    keys_dir = Path(app.config["AUTH_SIGNING_KEYS_DIR"])
    if env.is_local and not key_files(keys_dir):
        ensure_key(keys_dir)  # a dev key for `make run` and the tests, never in production
    keyring = KeyRing(keys_dir, reload_seconds=float(app.config["AUTH_KEYS_RELOAD_SECONDS"]))
    keyring.load()
    if not keyring.kids:
        app.logger.error("no signing key in %s; run `flask keys ensure`", keys_dir)

    deps = AuthDeps(
        settings=AuthSettings(
            issuer=app.config["JWT_ISSUER"],
            audience=app.config["JWT_AUDIENCE"],
            access_ttl=int(app.config["AUTH_ACCESS_TOKEN_TTL_SECONDS"]),
            refresh_ttl=int(app.config["AUTH_REFRESH_TOKEN_TTL_SECONDS"]),
            max_login_failures=int(app.config["AUTH_LOGIN_MAX_FAILURES"]),
            login_window=int(app.config["AUTH_LOGIN_WINDOW_SECONDS"]),
            account_max_failures=int(app.config["AUTH_LOGIN_ACCOUNT_MAX_FAILURES"]),
            account_login_delay=int(app.config["AUTH_LOGIN_ACCOUNT_DELAY_SECONDS"]),
            verify_email_url=app.config["AUTH_VERIFY_EMAIL_URL"],
            verification_ttl=int(app.config["AUTH_EMAIL_VERIFICATION_TTL_SECONDS"]),
        ),
        passwords=Passwords(
            time_cost=int(app.config["AUTH_ARGON2_TIME_COST"]),
            memory_kib=int(app.config["AUTH_ARGON2_MEMORY_KIB"]),
            parallelism=int(app.config["AUTH_ARGON2_PARALLELISM"]),
        ),
        keys=keyring,
    )
    app.extensions["auth"] = deps

    def signing_key_check() -> None:
        keyring.signing_key()

    init_service(
        app,
        db=db,
        migrations_dir=MIGRATIONS_DIR,
        blueprints=[api.blp, api.well_known_blp],
        # Auth verifies its own tokens from its own key ring: no HTTP round trip to itself.
        verifier=TokenVerifier(
            keyring,
            issuer=app.config["JWT_ISSUER"],
            audience=app.config["JWT_AUDIENCE"],
            max_lifetime=int(app.config["AUTH_ACCESS_TOKEN_TTL_SECONDS"]),
        ),
        extra_checks={"signing_key": signing_key_check},
    )
    cli.init_app(app)
    return app
