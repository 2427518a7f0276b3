"""Gunicorn settings shared by every web process: `gunicorn -c python:shared.gunicorn_conf APP`.

Each value can be tuned from the environment (names below). The service is named by
`SERVICE_NAME` (auth, orders, notifications, gateway), which picks its `<SERVICE>_PORT`.

Metrics: several workers each count their own requests, so Prometheus' multiprocess mode
is always on here. Every worker writes its samples under `PROMETHEUS_MULTIPROC_DIR` and
`/metrics` (shared.observability) adds them up. When the variable is unset, this master
gets a private directory of its own, removed again on exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from shared.config import DEFAULT_PORTS
from shared.gunicorn_worker import WORKER_CLASS

SHM = "/dev/shm"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, not {raw!r}") from None


def _default_port(service: str) -> int:
    return _int(f"{service.upper()}_PORT", DEFAULT_PORTS.get(service, 8000)) if service else 8000


service = os.environ.get("SERVICE_NAME", "").strip().lower()

# Containers set GUNICORN_HOST=0.0.0.0; on a workstation a forgotten flag stays private.
bind = [
    os.environ.get("GUNICORN_BIND")
    or f"{os.environ.get('GUNICORN_HOST', '127.0.0.1')}:{_default_port(service)}"
]
workers = _int("WEB_CONCURRENCY", 2)
# Threads: the gateway and the services mostly wait on the network or the database.
# gthread, balanced: see shared.gunicorn_worker for why plain gthread is not used.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", WORKER_CLASS)
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 30)
# SIGTERM: stop accepting, let in-flight requests finish for up to this long. Kubernetes'
# terminationGracePeriodSeconds and compose's stop_grace_period are set above it.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)
# Longer than the idle timeout of the proxies in front (nginx upstream keepalive: 60 s), so
# the proxy, not gunicorn, closes an idle connection and never reuses a half-closed one.
keepalive = _int("GUNICORN_KEEPALIVE", 75)
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 0)
# The worker heartbeat file is touched constantly; on a disk-backed /tmp that can stall.
worker_tmp_dir = SHM if os.path.isdir(SHM) else None
# One JSON line per request comes from the app itself (shared.observability).
accesslog = None
# gunicorn's own few lines (start, worker boot, shutdown) stay plain text on stderr: a
# logconfig_dict would also switch gunicorn's access log back on.
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
proc_name = f"suite-{service}" if service else "suite"
# gunicorn >= 25 opens a control socket under $HOME by default: unwanted in a read-only
# container, and two masters on one machine would fight over the same path.
control_socket_disable = True

# Chosen here, before any worker exists: prometheus_client reads the variable when it is
# first imported, which happens in the workers (and, with preload_app, in the master).
# The marker tells a config reload (SIGHUP) that the directory is still ours to remove.
_OWNED_MARKER = "SUITE_OWNS_PROMETHEUS_MULTIPROC_DIR"
_given = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
owns_multiproc_dir = _given is None or os.environ.get(_OWNED_MARKER) == _given
multiproc_dir = _given or os.path.join(
    SHM if os.path.isdir(SHM) else tempfile.gettempdir(),
    f"prometheus-{service or 'app'}-{os.getpid()}",
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
if owns_multiproc_dir:
    os.environ[_OWNED_MARKER] = multiproc_dir


def drop_server_header() -> None:
    """Stop gunicorn from announcing itself (and its version) in a `Server` header."""
    from gunicorn.http import wsgi

    original = wsgi.Response.default_headers
    if getattr(original, "_suite_patched", False):
        return

    def default_headers(self: Any) -> list[str]:
        return [line for line in original(self) if not line.lower().startswith("server:")]

    default_headers._suite_patched = True  # type: ignore[attr-defined]
    wsgi.Response.default_headers = default_headers


def on_starting(server: Any) -> None:
    """Master start-up: an empty metrics directory, and no Server header in any worker."""
    path = Path(multiproc_dir)
    path.mkdir(parents=True, exist_ok=True)
    # Files of a previous master (a container restart keeps its volumes) would otherwise be
    # added to this one's counters and keep dead processes' gauges alive.
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    drop_server_header()


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges from the aggregate."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the metrics directory when this master made it up itself."""
    if owns_multiproc_dir:
        shutil.rmtree(multiproc_dir, ignore_errors=True)
