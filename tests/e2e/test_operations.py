"""What an operator relies on, shown on the whole suite as deployed (bench/suite.py).

One trace id follows an order through the gateway, orders, the published event and the
notifications consumer, in the logs and in the spans exported over OTLP; and a rolling
restart of the orders web service, its relay and the notifications consumer, with orders
coming in all along, loses no order and no notification.

The module runs its own suite: logs at INFO (the access lines, the consumers' line per
handled event), span export to a local OTLP receiver, and rate limits out of the way of
the continuous orders.
"""

from __future__ import annotations

import collections
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pika
import pytest
import requests
from otlp_receiver import OtlpReceiver

from bench.suite import Suite, SuiteError, SuiteOptions, queue_exists
from shared.context import trace_id_of
from shared.messaging import EXCHANGE, declare_exchange, queue_name
from tests.support import wait_for

pytestmark = pytest.mark.e2e

# BOOK-1 is one of the demo products the suite seeds; the server prices it.
ORDER = {"currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 1}]}
# Everything but the notifications consumer, which the fixture starts once its queue
# can be waited for.
WORKERS = ("auth.relay", "orders.relay", "orders.consume", "gateway.worker")
CONSUMER = "notifications.consume"
SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    """The collector every process of the suite exports its spans to."""
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver) -> Iterator[Suite]:
    """The suite as deployed, exporting spans; the conftest's `register` uses this one."""
    options = SuiteOptions(
        workers=1,
        log_level="INFO",
        workers_to_start=WORKERS,
        base_dir=tmp_path_factory.mktemp("operations"),
        extra_env={
            "JWT_AUDIENCE": "flask-suite-e2e",
            "AUTH_ARGON2_TIME_COST": "1",
            "AUTH_ARGON2_MEMORY_KIB": "1024",
            "EVENT_RETRY_DELAYS": "0.5,1,2",
            "GATEWAY_RATE_LIMIT_USER": "100000/minute",
            "GATEWAY_RATE_LIMIT_IP": "100000/minute",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            # Export within a fifth of a second instead of five (the SDK's default).
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    )
    try:
        with Suite(options) as running:
            start_consumer(running)
            yield running
    except SuiteError as exc:
        pytest.fail(str(exc))


def start_consumer(suite: Suite) -> None:
    """Start the notifications consumer and wait until its queue exists."""
    suite.start_worker(CONSUMER)
    wait_for(
        lambda: queue_exists(suite.amqp_url, queue_name("notifications")),
        timeout=30,
        what="notifications queue declared",
    )


def log_records(suite: Suite, process: str) -> list[dict[str, Any]]:
    """The JSON lines a process wrote so far (gunicorn's own plain lines left out)."""
    records = []
    for line in (suite.logs / f"{process}.log").read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def records_of_trace(suite: Suite, process: str, trace_id: str) -> list[dict[str, Any]]:
    """The log records of one process that carry this trace id."""
    return [r for r in log_records(suite, process) if r.get("trace_id") == trace_id]


def access_lines(suite: Suite, process: str, trace_id: str) -> list[dict[str, Any]]:
    """The per-request log lines of one process in this trace."""
    return [r for r in records_of_trace(suite, process, trace_id) if r.get("message") == "request"]


@pytest.fixture
def order_events(suite: Suite) -> Iterator[Callable[[str], dict[str, Any] | None]]:
    """A queue of our own bound to order.created: find(order_id) -> the published event."""
    connection = pika.BlockingConnection(pika.URLParameters(suite.amqp_url))
    channel = connection.channel()
    declare_exchange(channel)
    queue = channel.queue_declare(queue="", exclusive=True).method.queue
    channel.queue_bind(queue=queue, exchange=EXCHANGE, routing_key="order.created")
    seen: dict[str, dict[str, Any]] = {}

    def find(order_id: str) -> dict[str, Any] | None:
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            event = json.loads(body)
            seen[event["data"]["order_id"]] = {"event": event, "headers": properties.headers}
        return seen.get(order_id)

    yield find
    connection.close()


def new_traceparent() -> tuple[str, str, str]:
    """A client's traceparent, its trace id and its span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


# -- tracing ------------------------------------------------------------------------------


def test_one_trace_id_follows_an_order_through_every_process(suite, register, order_events):
    user = register("Tracy")
    traceparent, trace_id, _ = new_traceparent()

    response = user.request(
        "POST",
        "/api/v1/orders",
        json=ORDER,
        headers={"traceparent": traceparent, "Idempotency-Key": uuid.uuid4().hex},
    )

    assert response.status_code == 201, response.text
    order_id = response.json()["id"]
    assert trace_id_of(response.headers["traceparent"]) == trace_id
    (gateway_line,) = wait_for(lambda: access_lines(suite, "gateway", trace_id), timeout=5)
    assert gateway_line["status"] == 201
    (orders_line,) = wait_for(lambda: access_lines(suite, "orders", trace_id), timeout=5)
    assert (orders_line["route"], orders_line["status"]) == ("/api/v1/orders", 201)
    assert orders_line["request_id"] == gateway_line["request_id"]
    # The relay logs no line per event; what it carries is in the event it published.
    published = wait_for(lambda: order_events(order_id), timeout=15, what="order.created")
    assert trace_id_of(published["event"]["traceparent"]) == trace_id
    assert trace_id_of(published["headers"]["traceparent"]) == trace_id
    assert wait_for(
        lambda: [
            r
            for r in records_of_trace(suite, CONSUMER, trace_id)
            if r["message"] == "event handled" and r.get("event_id") == published["event"]["id"]
        ],
        timeout=15,
        what="the consumer's line for the event",
    )


def test_every_web_process_exports_its_spans_in_the_callers_trace(suite, register, otlp):
    user = register("Spanner")
    traceparent, trace_id, client_span_id = new_traceparent()

    response = user.request("GET", "/api/v1/orders", headers={"traceparent": traceparent})
    assert response.status_code == 200, response.text

    expected = {
        ("gateway", SPAN_KIND_SERVER),
        ("gateway", SPAN_KIND_CLIENT),
        ("orders", SPAN_KIND_SERVER),
    }

    def all_arrived() -> list[Any] | None:
        # Each process exports in batches of its own: wait for every kind of span.
        spans = otlp.of_trace(trace_id)
        return spans if expected <= {(span.service, span.kind) for span in spans} else None

    spans = wait_for(all_arrived, timeout=10, what="spans of gateway and orders")
    gateway_server = [s for s in spans if s.service == "gateway" and s.kind == SPAN_KIND_SERVER]
    gateway_client = [s for s in spans if s.service == "gateway" and s.kind == SPAN_KIND_CLIENT]
    orders_server = [s for s in spans if s.service == "orders" and s.kind == SPAN_KIND_SERVER]
    assert len(gateway_server) == 1 and len(orders_server) == 1, spans
    # The client's span is the gateway's parent; the gateway's call is the parent of orders'.
    assert gateway_server[0].parent_span_id == client_span_id
    assert orders_server[0].parent_span_id in {s.span_id for s in gateway_client}
    assert {s.parent_span_id for s in gateway_client} == {gateway_server[0].span_id}


def test_a_request_without_traceparent_logs_the_trace_id_its_spans_have(suite, register, otlp):
    user = register("Untraced")

    response = user.request("GET", "/api/v1/orders")

    assert response.status_code == 200
    trace_id = trace_id_of(response.headers["traceparent"])
    assert trace_id is not None
    assert wait_for(lambda: access_lines(suite, "gateway", trace_id), timeout=5)
    # The trace id the gateway logged and answered with is the one its span was exported in.
    assert wait_for(
        lambda: [span for span in otlp.of_trace(trace_id) if span.service == "gateway"],
        timeout=10,
        what="the gateway's spans",
    )


# -- rolling restart ----------------------------------------------------------------------


@dataclass
class Placed:
    """What the order-placing clients saw."""

    order_ids: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> order id
    retries: list[float] = field(default_factory=list)  # when a 503 was answered
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def place_orders(suite: Suite, authorization: str, placed: Placed, stop: threading.Event) -> None:
    """Place orders until `stop`; a 503 is retried with the same Idempotency-Key."""
    session = requests.Session()
    session.headers["Authorization"] = authorization
    url = suite.url("gateway", "/api/v1/orders")
    while not stop.is_set():
        key = uuid.uuid4().hex
        deadline = time.monotonic() + 20
        while True:
            try:
                # A slow answer is an answer: on a busy machine a POST that waited for the
                # restarted orders service can take more than ten seconds.
                response = session.post(
                    url, json=ORDER, headers={"Idempotency-Key": key}, timeout=30
                )
            except requests.RequestException as exc:  # the gateway itself is never restarted
                with placed.lock:
                    placed.failures.append(f"{key}: {exc}")
                break
            if response.status_code == 503 and time.monotonic() < deadline:
                with placed.lock:
                    placed.retries.append(time.monotonic())
                time.sleep(0.1)
                continue
            with placed.lock:
                if 200 <= response.status_code < 300:
                    placed.order_ids[key] = response.json()["id"]
                else:
                    placed.failures.append(f"{key}: {response.status_code} {response.text}")
            break
        time.sleep(0.02)


def ready(base_url: str) -> bool:
    """Whether a web process answers its /readyz with 200."""
    try:
        return requests.get(f"{base_url}/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def restart(suite: Suite, name: str) -> tuple[float, float]:
    """SIGTERM a process, check it drained and exited cleanly, start it again; (down, up)."""
    process = suite.processes[name]
    down = time.monotonic()
    suite.stop_processes([name])
    assert process.popen.returncode == 0, f"{name} did not stop cleanly: {process.log}"
    if name == "orders":
        suite.start_web(name)
        wait_for(lambda: ready(suite.url(name)), timeout=30, what="orders ready again")
    elif name == CONSUMER:
        start_consumer(suite)
    else:
        suite.start_worker(name)
    return down, time.monotonic()


def all_pages(client, path: str) -> list[dict[str, Any]]:
    """Every item of a paginated listing, through the gateway."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = f"{path}?limit=100" + (f"&cursor={cursor}" if cursor else "")
        response = client.request("GET", query)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def test_a_rolling_restart_loses_no_order_and_no_notification(suite, register, request, capsys):
    user = register("Rolling")
    placed, stop = Placed(), threading.Event()
    clients = [
        threading.Thread(
            target=place_orders,
            args=(suite, user.http.headers["Authorization"], placed, stop),
            daemon=True,
        )
        for _ in range(2)
    ]
    for client in clients:
        client.start()

    windows = {}
    try:
        time.sleep(1.5)
        for name in ("orders", "orders.relay", CONSUMER):
            windows[name] = restart(suite, name)
            time.sleep(1.0)
        time.sleep(0.5)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=60)

    orders_down, orders_up = windows["orders"]
    summary = (
        f"rolling restart: {len(placed.order_ids)} orders placed, "
        f"{len(placed.retries)} POSTs retried after a 503 while orders was down "
        f"({orders_up - orders_down:.1f} s)"
    )
    request.node.user_properties.append(("rolling_restart", summary))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        with capsys.disabled():
            reporter.write_line(f"\n{summary}")

    assert placed.failures == []
    assert len(placed.order_ids) >= 20, summary
    # A retry is only allowed while the orders web service was down (plus a second of slack
    # for connections the gateway still held to the old one).
    assert all(orders_down <= at <= orders_up + 1.0 for at in placed.retries), summary
    ids = set(placed.order_ids.values())
    assert len(ids) == len(placed.order_ids), "two Idempotency-Keys answered with one order"
    # No order the clients were not told of: a retry replayed its first answer.
    assert {o["id"] for o in all_pages(user, "/api/v1/orders")} == ids

    expected = collections.Counter(order_id[:8] for order_id in ids)

    def order_notifications() -> collections.Counter[str] | None:
        # The title ends with the order's reference, the first 8 characters of its id.
        found = [
            n["title"].rsplit(" ", 1)[-1]
            for n in all_pages(user, "/api/v1/notifications")
            if n["event_type"] == "order.created"
        ]
        counted = collections.Counter(found)
        return counted if sum(counted.values()) >= len(ids) else None

    notified = wait_for(order_notifications, timeout=30, interval=0.5, what="every notification")
    assert notified == expected  # exactly one per order: none lost, none twice
