"""The notifications service: in-app notifications, email and signed webhooks, from events."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import Migrate

from shared.config import Env

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def create_app(config: Mapping[str, Any] | None = None, *, env: Env | None = None) -> Flask:
    """Build the app; `config` overrides settings (tests), `env` replaces os.environ."""
    # Imported here so that importing the package (for the CLI or gunicorn) stays cheap.
    from services.notifications import api
    from services.notifications.api import GUARD_EXTENSION
    from services.notifications.config import notifications_config, validate_config
    from services.notifications.models import db
    from services.notifications.ssrf import TargetGuard
    from shared import health, tokens
    from shared.app import create_base_app, init_api, remote_verifier
    from shared.db import engine_options, normalize_database_url

    env = env or Env()
    app = create_base_app("notifications", __name__, notifications_config(env), config, env=env)
    validate_config(app.config)

    url = normalize_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url))
    db.init_app(app)
    # Batch mode: SQLite can only alter a table by copying it, which batch does for us.
    Migrate(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)

    # Tokens are checked again here (not only at the gateway) against auth's JWKS;
    # tests swap app.extensions["token_verifier"] for one with their own key.
    tokens.init_app(app, remote_verifier(app))
    app.extensions[GUARD_EXTENSION] = TargetGuard(
        allow_private=bool(app.config["NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE"])
    )
    health.init_app(
        app,
        {
            "database": health.database_check(db),
            "broker": health.broker_check(app.config["AMQP_URL"]),
        },
    )
    api_ = init_api(app, [api.blp])
    api_.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    return app
