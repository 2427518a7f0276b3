"""Alembic environment of the notifications service, run by Flask-Migrate (`flask db ...`)."""

from shared.migrations import run_migrations

run_migrations()
