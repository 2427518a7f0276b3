"""Queues exist before anything publishes: an event published before a consumer first ran
still reaches every service that consumes it.

The broker routes an event only to the queues that exist at that moment. Each consuming
service has a `setup` command declaring its queues; `make run` runs it before starting the
processes, and the containers' migrate step runs it too.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest

from shared.events import new_event
from shared.messaging import Publisher, queue_name
from tests.support import create_vhost, delete_vhost

from .conftest import ENTRYPOINT, ROOT, process_env

SETUP_COMMANDS = {
    "orders": ["services.orders.worker", "setup"],
    "notifications": ["services.notifications.worker", "setup"],
    "gateway": ["gateway.worker", "setup"],
}
# Who must receive what (DESIGN.md, Events).
CONSUMERS_OF = {
    "user.registered": {"orders", "notifications"},
    "user.deactivated": {"orders", "notifications", "gateway"},
    "user.reactivated": {"orders", "notifications"},
    "user.role_changed": {"gateway"},
    "user.profile_changed": {"orders", "notifications"},
    "order.created": {"notifications"},
    "order.status_changed": {"notifications"},
}


@pytest.fixture
def vhost_url() -> Iterator[str]:
    """A vhost of this test alone: no queue exists there yet."""
    vhost, url = create_vhost("ops-setup")
    yield url
    delete_vhost(vhost)


def settings(amqp_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return process_env(
        APP_ENV="test",
        AMQP_URL=amqp_url,
        VAR_DIR=str(tmp_path),
        REDIS_URL="redis://127.0.0.1:6379/0",
        GATEWAY_REDIS_PREFIX=f"ops-{uuid.uuid4().hex[:8]}",
        PYTHONPATH=str(ROOT),
        **extra,
    )


def depths(amqp_url: str) -> dict[str, int]:
    """Ready messages in each consuming service's queue."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        return {
            service: int(
                channel.queue_declare(queue_name(service), passive=True).method.message_count
            )
            for service in SETUP_COMMANDS
        }


def publish_one_of_each(amqp_url: str) -> None:
    events = [new_event(event_type, "/test", {}) for event_type in CONSUMERS_OF]
    with Publisher(amqp_url) as publisher:
        assert publisher.publish_batch(events) == [True] * len(events)


def expected_depths() -> dict[str, int]:
    return {
        service: sum(service in consumers for consumers in CONSUMERS_OF.values())
        for service in SETUP_COMMANDS
    }


@pytest.mark.integration
def test_an_event_published_right_after_setup_reaches_every_consuming_service(
    vhost_url: str, tmp_path: Path
) -> None:
    env = settings(vhost_url, tmp_path)
    for command in SETUP_COMMANDS.values():
        result = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    publish_one_of_each(vhost_url)  # no consumer has ever run on this vhost

    assert depths(vhost_url) == expected_depths()


@pytest.mark.integration
@pytest.mark.timeout(300)  # three migrate steps, each a Flask app started under coverage
def test_the_containers_migrate_step_declares_the_queues_of_consuming_services(
    vhost_url: str, tmp_path: Path, database_factory: Callable[[str], str]
) -> None:
    databases = {
        "orders": database_factory("ops_setup_orders"),
        "notifications": database_factory("ops_setup_notifications"),
    }
    for service in SETUP_COMMANDS:
        extra = {"SERVICE_NAME": service}
        if service in databases:
            extra[f"{service.upper()}_DATABASE_URL"] = databases[service]
        result = subprocess.run(
            [str(ENTRYPOINT), "migrate"],
            cwd=tmp_path,
            env=settings(vhost_url, tmp_path, **extra),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    publish_one_of_each(vhost_url)

    assert depths(vhost_url) == expected_depths()


def test_make_run_declares_the_queues_of_every_consumer_before_starting_them() -> None:
    consumers = []
    for line in (ROOT / "Procfile").read_text().splitlines():
        argv = shlex.split(line.partition(":")[2])
        if argv[:2] == ["python", "-m"] and argv[3:] == ["consume"]:
            consumers.append(argv[2])
    script = (ROOT / "scripts" / "run.sh").read_text()
    supervisor = script.index('honcho" start')  # the exec that starts the processes

    assert consumers
    for module in consumers:
        setup = re.search(rf"python\"? -m {re.escape(module)} setup\n", script)
        assert setup is not None and setup.start() < supervisor, module
