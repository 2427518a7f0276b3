"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from services.auth.models import db
from tests.support import schema_drift


def test_sqlite_schema_matches_the_models(sqlite_app):
    assert schema_drift(sqlite_app, db) == []


@pytest.mark.integration
def test_postgresql_schema_matches_the_models(pg_app):
    assert schema_drift(pg_app, db) == []


def test_downgrade_and_upgrade_again_on_sqlite(sqlite_app):
    from flask_migrate import downgrade, upgrade

    with sqlite_app.app_context():
        downgrade(revision="base")
        upgrade()
    assert schema_drift(sqlite_app, db) == []
