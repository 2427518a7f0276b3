"""The Alembic environment of every service: each `migrations/env.py` only calls `run_migrations`.

Alembic runs env.py inside Flask-Migrate's `flask db ...` commands (and `flask_migrate.upgrade()`
in tests), so the current app's Flask-Migrate extension gives the engine, the metadata and the
context options (`render_as_batch`, `compare_type`) set in `create_app`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext
from flask import current_app

log = logging.getLogger("alembic.env")


def run_migrations() -> None:
    """Run the current app's migrations: on its engine, or as SQL text with `--sql`."""
    config = context.config
    # Log progress on the command line; in-process callers (the tests) keep their own logging.
    if not current_app.testing and config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    migrate = current_app.extensions["migrate"]
    engine = migrate.db.engine
    metadata = migrate.db.metadata
    options: dict[str, Any] = dict(migrate.configure_args)
    if context.is_offline_mode():
        context.configure(url=engine.url, target_metadata=metadata, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    options.setdefault("process_revision_directives", _skip_empty_revision)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, **options)
        with context.begin_transaction():
            context.run_migrations()


def _skip_empty_revision(
    _context: MigrationContext,
    _revision: str | Iterable[str | None] | Iterable[str],
    directives: list[MigrationScript],
) -> None:
    """`flask db migrate` without a model change writes no empty revision file."""
    if not getattr(context.config.cmd_opts, "autogenerate", False):
        return
    upgrade_ops = directives[0].upgrade_ops
    if upgrade_ops is not None and upgrade_ops.is_empty():
        directives[:] = []
        log.info("No changes in schema detected.")
