"""Request ids, W3C trace context, one JSON log line per request, Prometheus metrics."""

from __future__ import annotations

import logging
import os
import sys
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from pythonjsonlogger.json import JsonFormatter

from shared.context import (
    child_traceparent,
    clean_request_id,
    current_request_id,
    current_traceparent,
    set_correlation,
    trace_id_of,
)

REQUEST_ID_HEADER = "X-Request-ID"

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

access_log = logging.getLogger("access")


class _CorrelationFilter(logging.Filter):
    """Stamp every log record with the request id and trace id in force."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = current_request_id()
        record.trace_id = trace_id_of(current_traceparent())
        return True


def configure_logging(service: str, level: str | None = None) -> None:
    """JSON lines on stdout with service, request id and trace id on every record."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
        )
    )
    handler.addFilter(_CorrelationFilter(service))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_suite_handler", False):
            root.removeHandler(existing)
    handler._suite_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    # pika logs every reconnect attempt at WARNING with a traceback; ours say it once.
    logging.getLogger("pika").setLevel(logging.ERROR)


def _before_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = clean_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.traceparent = child_traceparent(request.headers.get("traceparent"))
    set_correlation(g.request_id, g.traceparent)


def _after_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    if g.get("traceparent"):
        response.headers["traceparent"] = g.traceparent
    started = g.get("request_started")
    duration = time.perf_counter() - started if started is not None else 0.0
    route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    service = _service_name()
    HTTP_REQUESTS.labels(service, request.method, route, str(response.status_code)).inc()
    HTTP_LATENCY.labels(service, request.method, route).observe(duration)
    access_log.info(
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(duration * 1000, 2),
            "remote_addr": request.remote_addr,
        },
    )
    return response


def _service_name() -> str:
    from flask import current_app

    return str(current_app.config.get("SERVICE_NAME", "app"))


def metrics_response() -> Response:
    """Prometheus exposition; aggregates gunicorn workers when multiprocess mode is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        payload = generate_latest(registry)
    else:
        payload = generate_latest()
    return Response(payload, mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Request id + trace context + access log + metrics endpoint on an app."""
    app.before_request(_before_request)
    app.after_request(_after_request)
    app.add_url_rule("/metrics", "metrics", metrics_response, methods=["GET"])
