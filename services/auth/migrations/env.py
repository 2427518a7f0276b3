"""Alembic environment of the auth service, run by Flask-Migrate (`flask db ...`)."""

from shared.migrations import run_migrations

run_migrations()
