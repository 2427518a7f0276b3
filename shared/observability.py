"""Request ids, W3C trace context, one JSON log line per request, Prometheus metrics.

Web processes expose `/metrics` on their own port (gunicorn runs them in Prometheus'
multiprocess mode, see shared.gunicorn_conf). Worker processes (relays, consumers, the
delivery worker) have no HTTP app: `start_metrics_server()` serves their `/metrics` and
`/healthz` on `METRICS_PORT`.

Spans: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) set, `init_tracing`
sends every request's span, and those of its outgoing HTTP calls, to that OTLP/HTTP
collector, continuing the caller's traceparent; the traceparent this process logs, passes
on and stores in events is then its span's. Unset (the default), no OpenTelemetry module
is even imported, and the packages (the `otel` extra) need not be installed.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    Metric,
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
METRICS_PORT_ENV = "METRICS_PORT"
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Label values must come from a small set: a client can send any method token, and each
# new label value is a new time series kept until the process restarts. Routes are URL
# rules (never paths), statuses the registered codes; anything else shares one value.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
KNOWN_STATUSES = frozenset(int(status) for status in HTTPStatus)
UNMATCHED_ROUTE = "<unmatched>"

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route", "status"],
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
    # Alembic announces each of its plugins at INFO whenever a process imports it.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _before_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = clean_request_id(request.headers.get(REQUEST_ID_HEADER))
    span_traceparent = current_app.extensions.get(SPAN_TRACEPARENT_EXTENSION)
    g.traceparent = (span_traceparent and span_traceparent()) or child_traceparent(
        request.headers.get("traceparent")
    )
    set_correlation(g.request_id, g.traceparent)


def _clear_correlation(_exc: BaseException | None) -> None:
    # The ids belong to this request only; code that runs next on this thread gets none.
    set_correlation(None, None)


def _after_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    if g.get("traceparent"):
        response.headers["traceparent"] = g.traceparent
    started = g.get("request_started")
    duration = time.perf_counter() - started if started is not None else 0.0
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    service = _service_name()
    method = request.method if request.method in KNOWN_METHODS else "OTHER"
    status = status_label(response.status_code)
    HTTP_REQUESTS.labels(service, method, route, status).inc()
    HTTP_LATENCY.labels(service, method, route, status).observe(duration)
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


def status_label(code: int) -> str:
    """The `status` label of a response: its code if registered (RFC 9110 & co.), else "other"."""
    return str(code) if code in KNOWN_STATUSES else "other"


def _service_name() -> str:
    return str(current_app.config.get("SERVICE_NAME", "app"))


def metrics_registry() -> CollectorRegistry:
    """What to expose: every process's samples in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


# Families a web app computes when it is scraped (app.extensions[SCRAPE_METRICS]): state
# read from the database, such as the outbox's backlog, which must be seen even while the
# process that would otherwise report it (the relay) is down.
SCRAPE_METRICS = "scrape_metrics"


class _WithScrapeMetrics:
    """A registry's families, those named by the scrape-time ones replaced by them."""

    def __init__(self, base: CollectorRegistry, fresh: list[Metric]) -> None:
        self.base = base
        self.fresh = fresh

    def collect(self) -> Iterable[Metric]:
        """The base families but for those recomputed now, then the recomputed ones."""
        replaced = {family.name for family in self.fresh}
        yield from (family for family in self.base.collect() if family.name not in replaced)
        yield from self.fresh


def metrics_response() -> Response:
    """Prometheus exposition; aggregates gunicorn workers when multiprocess mode is on."""
    registry: Any = metrics_registry()
    producers: list[Callable[[], list[Metric]]] = current_app.extensions.get(SCRAPE_METRICS, [])
    if producers:
        registry = _WithScrapeMetrics(registry, [m for produce in producers for m in produce()])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Request id + trace context + access log + metrics endpoint (+ spans, if asked) on an app."""
    # First: the span must exist before _before_request reads its traceparent.
    init_tracing(app)
    app.before_request(_before_request)
    app.teardown_request(_clear_correlation)
    app.after_request(_after_request)
    app.add_url_rule("/metrics", "metrics", metrics_response, methods=["GET"])


# -- OpenTelemetry export (optional) ---------------------------------------------------

OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SPAN_TRACEPARENT_EXTENSION = "span_traceparent"
# Probes and scrapes come every few seconds; their spans would bury the requests'.
UNTRACED_URLS = "/healthz,/readyz,/metrics"

_tracing_lock = threading.Lock()
_tracer_provider: Any = None


def tracing_enabled() -> bool:
    """Whether an OTLP endpoint is configured (the standard OpenTelemetry variables)."""
    return any(os.environ.get(name, "").strip() for name in OTLP_ENDPOINT_VARIABLES)


def init_tracing(app: Flask) -> bool:
    """Export the app's request spans over OTLP/HTTP when an endpoint is set; True if so."""
    if not tracing_enabled():
        return False
    # Imported here, never at module level: without an endpoint they need not be installed.
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    provider = _process_tracer_provider(str(app.config.get("SERVICE_NAME", "app")))
    FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]  # untyped upstream
        app, tracer_provider=provider, excluded_urls=UNTRACED_URLS, enable_commenter=False
    )
    app.extensions[SPAN_TRACEPARENT_EXTENSION] = _current_span_traceparent
    return True


def _process_tracer_provider(service: str) -> Any:
    """The one tracer provider of this process, made by its first app (after any fork).

    OpenTelemetry allows one global provider per process, and requests is instrumented
    process-wide, so both happen once whatever the number of apps built.
    """
    global _tracer_provider
    with _tracing_lock:
        if _tracer_provider is None:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.requests import RequestsInstrumentor
            from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            # OTEL_SERVICE_NAME, when an operator sets it, wins over the suite's name.
            named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
            provider = TracerProvider(resource=Resource.create(named))
            # The exporter reads the endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*.
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(provider)
            RequestsInstrumentor().instrument(tracer_provider=provider, excluded_urls=UNTRACED_URLS)
            # requests' own spans suppress urllib3's below them: one client span per call.
            URLLib3Instrumentor().instrument(tracer_provider=provider, excluded_urls=UNTRACED_URLS)
            _trace_transactions(provider)
            _tracer_provider = provider
        return _tracer_provider


TRANSACTION_SPAN = "db.transaction"
_SPAN_KEY = "otel_transaction_span"


def _trace_transactions(provider: Any) -> Callable[[], None]:
    """A span per database transaction opened within a traced request, begin to commit.

    It shows what a request spent holding its transaction (for orders: the order, its
    lines and the outbox row of its event, committed together). Only inside a recording
    span: a worker's transactions (no request span around them) would each start a trace
    of their own, which nobody could join to the event they belong to.
    """
    from opentelemetry import trace
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    tracer = provider.get_tracer("shared.observability")

    def begun(session: Session, _transaction: Any, _connection: Any) -> None:
        if _SPAN_KEY in session.info or not trace.get_current_span().is_recording():
            return
        session.info[_SPAN_KEY] = tracer.start_span(TRANSACTION_SPAN, kind=trace.SpanKind.CLIENT)

    def ended(session: Session, transaction: Any) -> None:
        if transaction.parent is not None:
            return  # a savepoint or a subtransaction: the outer one goes on
        span = session.info.pop(_SPAN_KEY, None)
        if span is not None:
            span.end()

    event.listen(Session, "after_begin", begun)
    event.listen(Session, "after_transaction_end", ended)

    def remove() -> None:
        event.remove(Session, "after_begin", begun)
        event.remove(Session, "after_transaction_end", ended)

    return remove


def _current_span_traceparent() -> str | None:
    """The W3C traceparent of the active span, or None outside one (an untraced URL)."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


# -- metrics for worker processes -------------------------------------------------------

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per scrape, so a slow client cannot block the next scrape."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No stderr line per scrape: the worker's own logs are the JSON ones."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class MetricsServer:
    """A running metrics endpoint of a worker process."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port actually bound (useful when 0 asked for any free one)."""
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _metrics_app(alive: Callable[[], bool] | None) -> Callable[..., Iterable[bytes]]:
    registry = metrics_registry()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body = generate_latest(registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        if path == "/healthz":
            ok = alive is None or alive()
            payload = json.dumps({"status": "ok" if ok else "unavailable"}).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [payload]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


def start_metrics_server(
    port: int | None = None,
    *,
    host: str | None = None,
    alive: Callable[[], bool] | None = None,
) -> MetricsServer | None:
    """Serve `/metrics` and `/healthz` from a daemon thread; port from METRICS_PORT if unset.

    Returns None when no port is configured (the local run needs none). `alive`, when
    given, decides `/healthz`: a worker whose loop died answers 503 and gets restarted.
    """
    if port is None:
        raw = os.environ.get(METRICS_PORT_ENV, "").strip()
        if not raw:
            return None
        try:
            port = int(raw)
        except ValueError:
            raise ValueError(f"{METRICS_PORT_ENV} must be an integer, not {raw!r}") from None
    multiproc_dir = os.environ.get(MULTIPROC_DIR_ENV)
    if multiproc_dir:
        # This process's files would otherwise be summed forever into live gauges.
        atexit.register(prom_multiprocess.mark_process_dead, os.getpid(), multiproc_dir)
    bind_host = host or os.environ.get("METRICS_HOST", "0.0.0.0")
    server = make_server(
        bind_host,
        port,
        _metrics_app(alive),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    logging.getLogger(__name__).info(
        "metrics server started", extra={"metrics_port": server.server_address[1]}
    )
    return MetricsServer(server, thread)
