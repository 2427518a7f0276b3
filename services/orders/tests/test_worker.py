"""The worker commands as operators run them: real processes, stopped with SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from services.orders.models import Order
from services.orders.tests.helpers import EventQueue, rows
from shared import contracts
from shared.messaging import Publisher
from tests.support import spawn, stop_process, wait_for

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def start_worker(
    orders_database_url: str, amqp_url: str, tmp_path: Path
) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Start `python -m services.orders.worker <command>` against the test servers."""
    started: list[subprocess.Popen[bytes]] = []

    def start(command: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "APP_ENV": "test",
            "ORDERS_DATABASE_URL": orders_database_url,
            "AMQP_URL": amqp_url,
            "PYTHONPATH": str(REPO_ROOT),
        }
        process = spawn(
            [sys.executable, "-m", "services.orders.worker", command],
            log=tmp_path / f"{command}.log",
            env=env,
            cwd=REPO_ROOT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_relay_process_publishes_new_orders_and_stops_on_sigterm(
    start_worker: Callable[[str], subprocess.Popen[bytes]],
    place: Callable[..., dict[str, Any]],
    alice: dict[str, str],
    order_events: EventQueue,
) -> None:
    relay = start_worker("relay")
    order = place(alice)
    [event] = order_events.wait_for(1, timeout=20)
    assert (event.type, event.data["order_id"]) == ("order.created", order["id"])
    assert stop_process(relay) == 0


def test_the_consumer_process_applies_user_events_and_stops_on_sigterm(
    app: Flask,
    amqp_url: str,
    start_worker: Callable[[str], subprocess.Popen[bytes]],
    place: Callable[..., dict[str, Any]],
    alice: dict[str, str],
) -> None:
    order = place(alice)
    consumer = start_worker("consume")
    deactivated = contracts.build(contracts.UserDeactivatedV1(user_id="user-alice", version=2))
    with Publisher(amqp_url) as publisher:
        # Unroutable until the consumer has declared its queue: retry until it has.
        wait_for(lambda: publisher.publish(deactivated), timeout=15)
    wait_for(
        lambda: [o.status for o in rows(app, Order)] == ["cancelled"], timeout=15, interval=0.1
    )
    assert str(rows(app, Order)[0].id) == order["id"]
    assert stop_process(consumer) == 0
