"""The migrations build exactly the schema the models describe, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade

from services.notifications.models import db
from tests.support import schema_drift


@pytest.mark.integration
def test_postgresql_schema_matches_the_models(app: Flask) -> None:
    assert schema_drift(app, db) == []


def test_sqlite_schema_matches_the_models(sqlite_app: Flask) -> None:
    assert schema_drift(sqlite_app, db) == []


def test_downgrade_and_upgrade_again_on_sqlite(sqlite_app: Flask) -> None:
    with sqlite_app.app_context():
        downgrade(revision="base")
        upgrade()
    assert schema_drift(sqlite_app, db) == []
