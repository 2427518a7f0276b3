"""Trace one order through every process of the suite, and chart it (`make flow-trace`).

    python -m bench.flow_trace [--warm-up 5] [--out docs/flows/trace.json]

The suite as deployed on this machine (bench/suite.py: gunicorn, relays, consumers, the
delivery worker, the SMTP sink; fresh databases and vhost) behind the nginx edge
(bench/edge.py), every web process exporting its spans to a local OTLP receiver. One user
with a webhook places a few orders to warm everything up, then the traced one, through the
edge, with a traceparent and an X-Request-ID of its own. Then it is followed by those two
ids and by its event id:

- spans: the gateway's request and its call to orders, orders' request and its database
  transaction (shared.observability);
- the edge's access line (a JSON one with $msec and $request_time, this run only);
- a tap queue of our own bound to order.created: when the broker routed the event;
- rows: the outbox row's `sent_at`, the notifications inbox row's `received_at`, the
  deliveries' `sent_at`;
- log lines of every process carrying the trace id or the request id;
- the mail file the SMTP sink wrote, and the webhook request our receiver got.

It writes the collection to --out, then (bench/flow_report.py) the waterfall PNG and the
generated blocks of docs/flows.md. All clocks are this machine's wall clock.
"""

from __future__ import annotations

import argparse
import dataclasses
import email
import email.policy
import functools
import json
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pika
import psycopg

from bench import flow_report, seeding
from bench.edge import Edge
from bench.events import ORDER_BODY, libpq_url
from bench.suite import Suite, SuiteOptions
from shared.messaging import EXCHANGE, declare_exchange
from tests.e2e.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support import wait_for

SPAN_SERVER, SPAN_CLIENT = 2, 3
# The edge's access line for this run: what the waterfall needs, as JSON.
EDGE_LOG_FORMAT = (
    'log_format flow escape=json \'{"msec":"$msec","request_time":"$request_time",'
    '"upstream_response_time":"$upstream_response_time","status":"$status",'
    '"request":"$request","request_id":"$edge_request_id"}\';'
)


class WebhookReceiver:
    """An HTTP endpoint that answers 204 and remembers when each POST arrived."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                at = time.time_ns()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.received.append(
                    {"at_ns": at, "headers": dict(self.headers), "body": body.decode()}
                )

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        """Where to point the webhook."""
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def for_order(self, order_id: str) -> dict[str, Any] | None:
        """The first request whose body names the order."""
        return next((r for r in list(self.received) if order_id in r["body"]), None)

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class Tap:
    """A queue of our own bound to order.created: when the broker routed each event."""

    def __init__(self, amqp_url: str) -> None:
        self.routed: dict[str, dict[str, Any]] = {}  # order id -> event id, time
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(amqp_url,), daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the tap queue was not bound in 30 s")

    def _run(self, amqp_url: str) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        declare_exchange(channel)
        queue = channel.queue_declare(queue="", exclusive=True).method.queue
        channel.queue_bind(queue=queue, exchange=EXCHANGE, routing_key="order.created")

        def arrived(_channel: Any, _method: Any, _properties: Any, body: bytes) -> None:
            at = time.time_ns()
            event = json.loads(body)
            self.routed[event["data"]["order_id"]] = {"event_id": event["id"], "at_ns": at}

        channel.basic_consume(queue=queue, on_message_callback=arrived, auto_ack=True)
        self._ready.set()
        while not self._stop.is_set():
            connection.process_data_events(time_limit=0.05)
        connection.close()

    def stop(self) -> None:
        """Close the connection (the queue goes with it)."""
        self._stop.set()
        self._thread.join(timeout=5)


@contextmanager
def traced_edge(suite: Suite, prefix: Path) -> Iterator[Edge]:
    """The nginx edge in front of the suite, logging a JSON access line per request."""
    edge = Edge.for_suite(suite, prefix)
    main = (prefix / "nginx.conf").read_text()
    stock = next(line for line in main.splitlines() if line.strip().startswith("access_log"))
    # After the include: the format names $edge_request_id, which edge.conf defines.
    include = next(line for line in main.splitlines() if line.strip().startswith("include"))
    main = main.replace(stock, "").replace(
        include, f"{include}\n    {EDGE_LOG_FORMAT}\n    access_log {prefix}/flow.log flow;"
    )
    (prefix / "nginx.conf").write_text(main)
    edge.start()
    try:
        yield edge
    finally:
        edge.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the suite, trace one order, write the collection, the chart and the doc."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm-up", type=int, default=5, help="orders placed before")
    parser.add_argument("--out", type=Path, default=flow_report.TRACE_JSON)
    parser.add_argument("--no-doc", action="store_true", help="write the JSON only")
    parser.add_argument(
        "--start-timeout", type=float, default=180.0, help="seconds each process may take to boot"
    )
    args = parser.parse_args(argv)
    receiver = OtlpReceiver().start()
    hooks = WebhookReceiver()
    options = SuiteOptions(
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE": "1",
        },
        start_timeout=args.start_timeout,
    )
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        with Suite(options) as suite, traced_edge(suite, suite.dir / "nginx") as edge:
            tap = Tap(suite.amqp_url)
            try:
                collected = trace_one_order(suite, edge, receiver, hooks, tap, args.warm_up)
            finally:
                tap.stop()
    finally:
        hooks.stop()
        receiver.stop()
    collected["meta"].update({"started": started, "load_before": load_before})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(collected, indent=2) + "\n")
    sys.stdout.write(flow_report.table(collected) + "\n")
    if not args.no_doc:
        flow_report.write(collected)
        sys.stdout.write(f"wrote {flow_report.WATERFALL} and {flow_report.DOC}\n")
    return 0


def trace_one_order(
    suite: Suite,
    edge: Edge,
    receiver: OtlpReceiver,
    hooks: WebhookReceiver,
    tap: Tap,
    warm_up: int,
) -> dict[str, Any]:
    """Warm up, place the traced order, wait for every hop, gather what each one left."""
    (user,) = seeding.register_users(suite, 1, label="flow")
    http = seeding.http_session()
    auth = {"Authorization": f"Bearer {user.token}"}
    created = http.post(
        f"{edge.url}/api/v1/notifications/webhooks",
        json={"url": hooks.url, "event_types": ["order.created"]},
        headers=auth,
        timeout=30,
    )
    if created.status_code != 201:
        raise RuntimeError(f"webhook registration answered {created.status_code}: {created.text}")
    for _ in range(warm_up):
        warm = str(place(http, edge.url, auth)["id"])
        wait_for(functools.partial(hooks.for_order, warm), timeout=60, what="a warm-up webhook")

    trace_id, request_id = secrets.token_hex(16), f"flow-{uuid.uuid4().hex[:12]}"
    headers = {
        **auth,
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        "X-Request-ID": request_id,
        "Idempotency-Key": uuid.uuid4().hex,
    }
    sent = time.time_ns()
    order = place(http, edge.url, headers)
    read = time.time_ns()
    order_id = str(order["id"])

    webhook = wait_for(lambda: hooks.for_order(order_id), timeout=60, what="the webhook")
    routed = wait_for(lambda: tap.routed.get(order_id), timeout=30, what="the tap's copy")
    event_id = routed["event_id"]
    rows = wait_for(
        lambda: delivered_rows(suite, event_id), timeout=60, what="both deliveries recorded"
    )
    mail = wait_for(
        lambda: mail_file(suite, order_id, user.email), timeout=30, what="the mail file"
    )
    spans = wait_for(lambda: trace_spans(receiver, trace_id), timeout=30, what="the spans")
    edge_line = wait_for(lambda: edge_access(edge, request_id), timeout=10, what="edge line")
    lines = wait_for(
        lambda: handled_lines(suite, trace_id, request_id, mail["name"]),
        timeout=30,
        what="the consumer's line",
    )
    handled = next(r for r in lines if r["message"] == "event handled")
    edge_end = int(float(edge_line["msec"]) * 1e9)
    instants = {
        "client_sent": sent,
        "client_read": read,
        "edge_start": edge_end - int(float(edge_line["request_time"]) * 1e9),
        "edge_end": edge_end,
        "gateway_start": spans["gateway"].start_ns,
        "gateway_end": spans["gateway"].end_ns,
        "gateway_call_start": spans["gateway-call"].start_ns,
        "gateway_call_end": spans["gateway-call"].end_ns,
        "orders_start": spans["orders"].start_ns,
        "orders_end": spans["orders"].end_ns,
        "transaction_begin": spans["transaction"].start_ns,
        "transaction_commit": spans["transaction"].end_ns,
        "routed": routed["at_ns"],
        "outbox_sent": rows["outbox_sent"],
        "inbox_row": rows["inbox_row"],
        "event_handled": handled["at_ns"],
        "mail_stored": mail["at_ns"],
        "email_sent": rows["email_sent"],
        "webhook_received": webhook["at_ns"],
        "webhook_sent": rows["webhook_sent"],
    }
    return {
        "meta": {
            "order_id": order_id,
            "event_id": event_id,
            "request_id": request_id,
            "trace_id": trace_id,
            "warm_up_orders": warm_up,
            "processes_per_web_service": suite.options.workers,
            "threads": suite.options.threads,
        },
        "instants_ns": instants,
        "spans": {key: dataclasses.asdict(span) for key, span in spans.items()},
        "edge_line": edge_line,
        "mail_file": mail["name"],
        "webhook_headers": {
            k: v for k, v in webhook["headers"].items() if k.lower().startswith("webhook-")
        },
        "log_lines": [{k: v for k, v in r.items() if k != "at_ns"} for r in lines],
    }


def place(http: Any, base: str, headers: dict[str, str]) -> dict[str, Any]:
    """POST one order through the edge; its body (RuntimeError unless 201)."""
    response = http.post(f"{base}/api/v1/orders", json=ORDER_BODY, headers=headers, timeout=30)
    if response.status_code != 201:
        raise RuntimeError(f"placing an order answered {response.status_code}: {response.text}")
    body: dict[str, Any] = response.json()
    return body


def _ns(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000) * 1000


def delivered_rows(suite: Suite, event_id: str) -> dict[str, int] | None:
    """Times of the outbox, inbox and delivery rows of the event, once both are sent."""
    with psycopg.connect(libpq_url(suite.database_urls["orders"])) as conn:
        sent = conn.execute(
            "SELECT sent_at FROM outbox WHERE event_id = %s", (event_id,)
        ).fetchone()
    with psycopg.connect(libpq_url(suite.database_urls["notifications"])) as conn:
        inbox = conn.execute(
            "SELECT received_at FROM inbox WHERE event_id = %s AND consumer = 'notifications'",
            (event_id,),
        ).fetchone()
        deliveries: dict[str, datetime] = dict(
            conn.execute(
                "SELECT d.channel, d.sent_at FROM deliveries d JOIN notifications n"
                " ON n.id = d.notification_id WHERE n.event_id = %s",
                (event_id,),
            ).fetchall()
        )
    if not (sent and sent[0] and inbox and deliveries.get("email") and deliveries.get("webhook")):
        return None
    return {
        "outbox_sent": _ns(sent[0]),
        "inbox_row": _ns(inbox[0]),
        "email_sent": _ns(deliveries["email"]),
        "webhook_sent": _ns(deliveries["webhook"]),
    }


def mail_file(suite: Suite, order_id: str, address: str) -> dict[str, Any] | None:
    """The mail about the order, and when the sink stored it (from its file name, in µs)."""
    ref = order_id[:8]  # what the mail names (its templates show the first 8 characters)
    for path in sorted((suite.dir / "mail").glob("*.eml")):
        message = cast(
            EmailMessage,
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default),
        )
        body = message.get_body(("plain",))
        if message["To"] == address and body is not None and ref in str(body.get_content()):
            stamp = datetime.strptime(path.name.split("-")[0], "%Y%m%dT%H%M%S.%fZ")
            return {"name": path.name, "at_ns": _ns(stamp.replace(tzinfo=UTC))}
    return None


def trace_spans(receiver: OtlpReceiver, trace_id: str) -> dict[str, ReceivedSpan] | None:
    """The four spans the waterfall needs, once all have arrived."""
    spans = receiver.of_trace(trace_id)

    def one(service: str, kind: int, name: str | None = None) -> ReceivedSpan | None:
        found = [
            s for s in spans if s.service == service and s.kind == kind and name in (None, s.name)
        ]
        return min(found, key=lambda s: s.start_ns) if found else None

    chosen = {
        "gateway": one("gateway", SPAN_SERVER),
        "gateway-call": one("gateway", SPAN_CLIENT),
        "orders": one("orders", SPAN_SERVER),
        "transaction": one("orders", SPAN_CLIENT, "db.transaction"),
    }
    if any(span is None for span in chosen.values()):
        return None
    return {key: span for key, span in chosen.items() if span is not None}


def edge_access(edge: Edge, request_id: str) -> dict[str, Any] | None:
    """nginx's access line for the request id."""
    path = edge.prefix / "flow.log"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("request_id") == request_id:
            return dict(record)
    return None


def handled_lines(
    suite: Suite, trace_id: str, request_id: str, mail_name: str
) -> list[dict[str, Any]] | None:
    """Every process's log records of the order (by trace or request id), in time order.

    None until the notifications consumer's "event handled" line is there. The SMTP sink
    logs plain text: its line naming the order's mail file is taken as it is.
    """
    records: list[dict[str, Any]] = []
    for log in sorted(suite.logs.glob("*.log")):
        process = log.stem
        for line in log.read_text(errors="replace").splitlines():
            record = _json(line)
            if record is None:
                if process == "notifications.smtp" and mail_name in line:
                    stamp = line[:23]
                    message = line[24:].strip().replace(str(suite.dir), "$VAR_DIR")
                    records.append(
                        {
                            "time": stamp,
                            "process": process,
                            "message": message,
                            "at_ns": _local_ns(stamp),
                        }
                    )
                continue
            if record.get("trace_id") != trace_id and record.get("request_id") != request_id:
                continue
            keep = (
                "route",
                "status",
                "duration_ms",
                "event_type",
                "event_id",
                "channel",
                "delivery_id",
                "request_id",
                "trace_id",
                "consumer",
            )
            records.append(
                {
                    "time": record.get("time", ""),
                    "process": process,
                    "message": record.get("message", ""),
                    **{k: record[k] for k in keep if k in record},
                    "at_ns": _local_ns(str(record.get("time", ""))),
                }
            )
    records.sort(key=lambda r: r["at_ns"])
    if not any(r["message"] == "event handled" for r in records):
        return None
    return records


def _json(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _local_ns(stamp: str) -> int:
    # logging's asctime: local time, milliseconds.
    try:
        return int(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() * 1e9)
    except ValueError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
