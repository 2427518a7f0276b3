"""Alembic environment of the orders service, run by Flask-Migrate (`flask db ...`)."""

from shared.migrations import run_migrations

run_migrations()
