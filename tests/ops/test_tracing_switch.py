"""Span export is switched by the environment alone, and costs nothing when it is off.

(That spans arrive, in the caller's trace, is shown on the whole suite in
tests/e2e/test_operations.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import free_port

from .conftest import ROOT, process_env

# Builds a service and the gateway and serves a request each, then names the
# OpenTelemetry modules the process holds.
PROBE = """
import json, sys
from gateway import create_app as gateway
from services.orders import create_app as orders
for app in (orders({"TESTING": True}), gateway({"TESTING": True})):
    assert app.test_client().get("/api/v1/nowhere").status_code == 404
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
sys.stdout.write(json.dumps(loaded))
"""


def opentelemetry_modules_loaded(**env: str) -> list[str]:
    """The OpenTelemetry modules a process loads building and using apps in this environment."""
    environment = {
        k: v for k, v in process_env(APP_ENV="test").items() if not k.startswith("OTEL_")
    }
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_without_an_endpoint_no_opentelemetry_module_is_imported() -> None:
    assert opentelemetry_modules_loaded() == []


def test_with_an_endpoint_requests_and_flask_are_instrumented() -> None:
    loaded = opentelemetry_modules_loaded(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        # Nothing listens there: no export is attempted before the process ends.
        OTEL_BSP_SCHEDULE_DELAY="60000",
    )

    assert "opentelemetry.instrumentation.flask" in loaded
    assert "opentelemetry.instrumentation.requests" in loaded
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in loaded
