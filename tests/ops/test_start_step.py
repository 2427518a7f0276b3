"""The containers' start step: wait for the database, migrate, then serve or run a worker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support import free_port

from .conftest import ENTRYPOINT, ROOT, process_env

pytestmark = pytest.mark.integration

WAIT_FOR = ROOT / "docker" / "wait_for.py"


def run_wait_for(url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`python docker/wait_for.py START_DATABASE_URL ARGS` with the URL in that variable."""
    env = process_env(PYTHONPATH=str(ROOT))
    env.pop("START_DATABASE_URL", None)
    if url is not None:
        env["START_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, str(WAIT_FOR), "START_DATABASE_URL", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_waiting_for_a_running_database_returns_at_once(
    database_factory: Callable[[str], str],
) -> None:
    result = run_wait_for(database_factory("ops_wait"), "--timeout", "10")

    assert result.returncode == 0, result.stderr
    assert "is up" in result.stderr


def test_a_database_that_never_answers_fails_after_the_timeout_without_its_password() -> None:
    url = f"postgresql://suite:s3cret-pw@127.0.0.1:{free_port()}/suite"

    result = run_wait_for(url, "--timeout", "1.5", "--interval", "0.5")

    assert result.returncode == 1
    assert "not reachable after 1.5s" in result.stderr
    assert "s3cret-pw" not in result.stderr


def test_waiting_without_a_database_url_is_an_error() -> None:
    result = run_wait_for(None)

    assert result.returncode == 2
    assert "START_DATABASE_URL is not set" in result.stderr


def test_the_migrate_step_creates_the_service_schema(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    url = database_factory("ops_migrate")

    result = subprocess.run(
        [str(ENTRYPOINT), "migrate"],
        cwd=tmp_path,  # the container's working directory holds no source either
        env=process_env(
            SERVICE_NAME="orders",
            ORDERS_DATABASE_URL=url,
            VAR_DIR=str(tmp_path),
            PYTHONPATH=str(ROOT),  # what the image has installed
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "orders", "outbox", "inbox"} <= tables
