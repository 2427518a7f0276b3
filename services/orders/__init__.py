"""The orders service: users place and cancel orders, admins move them through their states.

It owns its database, publishes order.created / order.status_changed through its outbox,
and keeps a projection of auth's users from user.registered / user.deactivated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import Migrate

from services.orders import api
from services.orders.config import orders_config, validate_config
from services.orders.models import db
from shared import health, tokens
from shared.app import create_base_app, init_api, remote_verifier
from shared.config import Env
from shared.db import engine_options, normalize_database_url

MIGRATIONS_DIR = str(Path(__file__).resolve().parent / "migrations")

migrate = Migrate()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the orders app; `config` overrides settings (tests point it at their servers).

    Nothing connects here: the engine, the broker check and the JWKS client all connect
    lazily, on first use, in the process (gunicorn worker) that uses them.
    """
    env = Env()
    app = create_base_app("orders", __name__, orders_config(env), config, env=env)
    validate_config(app.config)
    url = normalize_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url))

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    tokens.init_app(app, remote_verifier(app))
    health.init_app(
        app,
        {
            "database": health.database_check(db),
            "broker": health.broker_check(app.config["AMQP_URL"]),
        },
    )
    rest = init_api(app, [api.blp])
    rest.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    return app
