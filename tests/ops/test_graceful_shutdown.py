"""A rolling restart loses nothing: SIGTERM lets the work in hand finish.

Both processes are the real thing: gunicorn with the suite's config started through the
containers' entry point, and a shared.messaging.Consumer on the real RabbitMQ (a fresh
vhost for this session).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
import requests

from shared.events import new_event
from shared.messaging import Publisher, connection_parameters, declare_topology, queue_name
from tests.support import spawn, wait_for

from . import probe_consumer
from .conftest import HERE, ROOT, Server, process_env

pytestmark = pytest.mark.integration


def test_sigterm_lets_an_in_flight_request_finish_with_200(
    probe_server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    server = probe_server_factory(WEB_CONCURRENCY="1", PROBE_MARKER_DIR=str(markers))
    # The entry point must have exec'd gunicorn: otherwise SIGTERM would hit a shell.
    cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
    assert b"gunicorn" in cmdline

    result: dict[str, requests.Response] = {}
    client = threading.Thread(
        target=lambda: result.update(
            response=requests.get(f"{server.url}/slow?seconds=2", timeout=15)
        )
    )
    client.start()
    wait_for(lambda: any(markers.iterdir()), timeout=10, what="the slow request to start")
    server.process.send_signal(signal.SIGTERM)
    client.join(timeout=15)

    assert result["response"].status_code == 200
    assert result["response"].json()["done"] is True
    assert server.process.wait(timeout=15) == 0


# -- consumer ---------------------------------------------------------------------------


@pytest.fixture
def probe_queue(amqp_url: str) -> Iterator[str]:
    """The probe consumer's queues, declared as the consumer declares them, deleted after."""
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    channel = connection.channel()
    declare_topology(
        channel,
        probe_consumer.CONSUMER,
        [probe_consumer.ROUTING_KEY],
        delivery_limit=probe_consumer.DELIVERY_LIMIT,
        retry_delays=probe_consumer.RETRY_DELAYS,
    )
    channel.queue_purge(queue_name(probe_consumer.CONSUMER))
    connection.close()
    yield queue_name(probe_consumer.CONSUMER)
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    connection.channel().queue_purge(queue_name(probe_consumer.CONSUMER))
    connection.close()


def ready_messages(amqp_url: str, queue: str, expected: int) -> int:
    """Messages waiting in `queue`, polled briefly: the broker requeues a closed
    connection's unacked messages asynchronously."""
    deadline = time.monotonic() + 5
    while True:
        connection = pika.BlockingConnection(connection_parameters(amqp_url))
        try:
            declared = connection.channel().queue_declare(queue=queue, passive=True)
            count = int(declared.method.message_count)
        finally:
            connection.close()
        if count == expected or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def start_consumer(amqp_url: str, journal: Path, log: Path) -> subprocess.Popen[bytes]:
    """A probe consumer process whose handler takes 0.2 seconds per event."""
    return spawn(
        [sys.executable, str(HERE / "probe_consumer.py"), amqp_url, str(journal)],
        log=log,
        env=process_env(PROBE_HANDLER_SECONDS="0.2", PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    )


def journal_of(journal: Path) -> list[str]:
    """The lines the consumers wrote so far."""
    return journal.read_text().splitlines() if journal.exists() else []


def test_a_consumer_stopped_mid_message_finishes_what_it_holds_and_a_restart_the_rest(
    amqp_url: str, probe_queue: str, tmp_path: Path
) -> None:
    # More events than the consumer's prefetch (20): some are still in the queue at the stop.
    events = [new_event(probe_consumer.ROUTING_KEY, "/ops", {"n": n}) for n in range(25)]
    with Publisher(amqp_url) as publisher:
        assert all(publisher.publish_batch(events))
    journal, log = tmp_path / "journal.txt", tmp_path / "consumer.log"

    first = start_consumer(amqp_url, journal, log)
    try:
        wait_for(
            lambda: any(line.startswith("start") for line in journal_of(journal)),
            timeout=20,
            what="the first consumer to start handling an event",
        )
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=15) == 0, log.read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    lines = journal_of(journal)
    assert lines[-1] == "stopped"
    started = [line.split()[1] for line in lines if line.startswith("start")]
    done = [line.split()[1] for line in lines if line.startswith("done")]
    # The message in hand and those prefetched behind it were all finished and acked;
    # nothing went back to the queue (where each return would count as a delivery).
    assert started == done
    assert len(done) > 1
    left = len(events) - len(done)
    assert ready_messages(amqp_url, probe_queue, expected=left) == left

    second = start_consumer(amqp_url, journal, log)
    try:
        wait_for(
            lambda: len([ln for ln in journal_of(journal) if ln.startswith("done")]) == 25,
            timeout=20,
            what="the restarted consumer to handle the rest",
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0, log.read_text()
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()

    done = [line.split()[1] for line in journal_of(journal) if line.startswith("done")]
    assert sorted(done) == sorted(event.id for event in events)  # each exactly once
    assert ready_messages(amqp_url, probe_queue, expected=0) == 0
