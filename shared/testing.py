"""Test helpers every service's tests use: throwaway PostgreSQL databases and RabbitMQ vhosts.

Each test session gets its own databases and its own vhost on the real servers, so the
suites of several services (and several xdist workers) never see each other's rows or
messages. Registered as a pytest plugin by the root conftest.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("TEST_AMQP_HOST", "127.0.0.1:5672")


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True)


def create_database(prefix: str) -> str:
    """Create an empty PostgreSQL database and return its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is ours, not user input
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by create_database, closing whatever still uses it."""
    name = url.rsplit("/", 1)[1]
    with _admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rabbitmqctl(*args: str, node: str | None = None) -> str:
    """Run rabbitmqctl against the shared node (or another one) and return its output."""
    cmd = ["rabbitmqctl"]
    if node:
        cmd += ["-n", node]
    result = subprocess.run([*cmd, *args], check=True, capture_output=True, text=True, timeout=60)
    return result.stdout


def create_vhost(prefix: str = "test") -> tuple[str, str]:
    """Create a vhost on the shared broker for guest; return (vhost, amqp_url)."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return vhost, f"amqp://guest:guest@{AMQP_HOST}/{quote(vhost, safe='')}"


def delete_vhost(vhost: str) -> None:
    """Delete a vhost made by create_vhost (its queues and messages go with it)."""
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A fresh vhost on the real RabbitMQ for this test session."""
    vhost, url = create_vhost()
    yield url
    delete_vhost(vhost)


@pytest.fixture(scope="session")
def database_factory() -> Iterator[object]:
    """Make fresh PostgreSQL databases on demand; all dropped at the end of the session."""
    made: list[str] = []

    def make(prefix: str) -> str:
        url = create_database(prefix)
        made.append(url)
        return url

    yield make
    for url in made:
        drop_database(url)
