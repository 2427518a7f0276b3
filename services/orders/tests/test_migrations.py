"""The migrations build exactly the schema the models describe, on PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from services.orders import MIGRATIONS_DIR
from services.orders.models import db


def schema_drift(app: Flask) -> list[Any]:
    """What autogenerate would change to make the migrated database match the models."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, db.metadata))


@pytest.mark.integration
def test_postgresql_schema_matches_the_models(app: Flask) -> None:
    assert schema_drift(app) == []


def test_sqlite_schema_matches_the_models(sqlite_app: Flask) -> None:
    assert schema_drift(sqlite_app) == []


def test_downgrade_to_nothing_and_upgrade_again_on_sqlite(sqlite_app: Flask) -> None:
    with sqlite_app.app_context():
        flask_migrate.downgrade(directory=MIGRATIONS_DIR, revision="base")
        flask_migrate.upgrade(directory=MIGRATIONS_DIR)
    assert schema_drift(sqlite_app) == []
