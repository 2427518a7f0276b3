"""The orders service: users place and cancel orders, admins move them through their states.

It owns its database, publishes order.created / order.status_changed through its outbox,
and keeps a projection of auth's users from user.registered / user.deactivated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from services.orders import api, cli
from services.orders.config import orders_config, validate_config
from services.orders.models import READS, Outbox, db
from shared.app import create_base_app, init_service, remote_verifier
from shared.config import Env
from shared.db import config_engine_options, normalize_database_url
from shared.observability import SCRAPE_METRICS
from shared.outbox import backlog_metrics

MIGRATIONS_DIR = str(Path(__file__).resolve().parent / "migrations")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the orders app; `config` overrides settings (tests point it at their servers).

    Nothing connects here: the engine, the broker check and the JWKS client all connect
    lazily, on first use, in the process (gunicorn worker) that uses them.
    """
    env = Env()
    app = create_base_app("orders", __name__, orders_config(env), config, env=env)
    validate_config(app.config)
    url = normalize_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config.setdefault("SQLALCHEMY_BINDS", {}).setdefault(
        READS,
        read_engine_options(
            url,
            app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or config_engine_options(url, app.config),
        ),
    )
    init_service(
        app,
        db=db,
        migrations_dir=MIGRATIONS_DIR,
        blueprints=[api.blp, api.products_blp],
        verifier=remote_verifier(app),
    )
    app.extensions.setdefault(SCRAPE_METRICS, []).append(
        lambda: backlog_metrics(db.session(), Outbox)
    )
    cli.init_app(app)
    return app


def read_engine_options(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The reads engine: the default engine's options, in autocommit and without a ping.

    Autocommit: a GET runs one query, so a transaction around it would only add BEGIN and
    ROLLBACK round trips. No ping before each use (`pool_pre_ping`, another round trip):
    the reads run once more on a new connection when theirs turns out to be dead.
    """
    base = dict(options) if options is not None else config_engine_options(url, {})
    return {**base, "url": url, "isolation_level": "AUTOCOMMIT", "pool_pre_ping": False}
