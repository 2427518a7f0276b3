"""The notifications service: in-app notifications, email and signed webhooks, from events."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from shared.config import Env

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def create_app(config: Mapping[str, Any] | None = None, *, env: Env | None = None) -> Flask:
    """Build the app; `config` overrides settings (tests), `env` replaces os.environ."""
    # Imported here so that importing the package (for the CLI or gunicorn) stays cheap.
    from services.notifications import api, cli
    from services.notifications.api import GUARD_EXTENSION
    from services.notifications.config import notifications_config, validate_config
    from services.notifications.models import db
    from services.notifications.ssrf import TargetGuard
    from shared.app import create_base_app, init_service, remote_verifier

    env = env or Env()
    app = create_base_app("notifications", __name__, notifications_config(env), config, env=env)
    validate_config(app.config)
    app.extensions[GUARD_EXTENSION] = TargetGuard(
        allow_private=bool(app.config["NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE"])
    )
    init_service(
        app,
        db=db,
        migrations_dir=MIGRATIONS_DIR,
        blueprints=[api.blp],
        # Tokens are checked again here (not only at the gateway) against auth's JWKS;
        # tests swap app.extensions["token_verifier"] for one with their own key.
        verifier=remote_verifier(app),
    )
    cli.init_app(app)
    return app
