"""The migrations build exactly the schema the models describe, on PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade

from services.notifications.models import db


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


def test_downgrade_and_upgrade_again_on_sqlite(sqlite_app: Flask) -> None:
    with sqlite_app.app_context():
        downgrade(revision="base")
        upgrade()
    assert schema_drift(sqlite_app) == []
