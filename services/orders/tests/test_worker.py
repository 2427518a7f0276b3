"""The worker commands as operators run them: real processes, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from services.orders.models import Order
from services.orders.tests.helpers import EventQueue, rows
from shared.events import Event
from shared.messaging import Publisher

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
        with (tmp_path / f"{command}.log").open("wb") as log:  # the child keeps its own copy
            process = subprocess.Popen(
                [sys.executable, "-m", "services.orders.worker", command],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit code (failing if it does not stop within 15 s)."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=15)


def wait_until(condition: Callable[[], Any], timeout: float = 15.0) -> None:
    """Poll until `condition()` is true or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


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
    assert stop(relay) == 0


def test_the_consumer_process_applies_user_events_and_stops_on_sigterm(
    app: Flask,
    amqp_url: str,
    start_worker: Callable[[str], subprocess.Popen[bytes]],
    place: Callable[..., dict[str, Any]],
    alice: dict[str, str],
) -> None:
    order = place(alice)
    consumer = start_worker("consume")
    deactivated = Event(
        type="user.deactivated",
        source="/auth",
        data={"user_id": "user-alice"},
        subject="user-alice",
    )
    with Publisher(amqp_url) as publisher:
        # Unroutable until the consumer has declared its queue: retry until it has.
        wait_until(lambda: publisher.publish(deactivated))
    wait_until(lambda: [o.status for o in rows(app, Order)] == ["cancelled"])
    assert str(rows(app, Order)[0].id) == order["id"]
    assert stop(consumer) == 0
