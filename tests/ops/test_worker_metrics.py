"""Worker processes (relays, consumers, the delivery worker) expose metrics on METRICS_PORT."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from flask import Flask

from shared.app import create_base_app
from shared.messaging import EVENTS_PROCESSED
from shared.observability import MetricsServer, start_metrics_server
from tests.support import (
    create_vhost,
    delete_vhost,
    free_port,
    spawn,
    stop_processes,
    wait_until_healthy,
)

from .conftest import ROOT, process_env


@pytest.fixture
def metrics_server() -> Iterator[MetricsServer]:
    """A metrics server on a free port of 127.0.0.1."""
    server = start_metrics_server(0, host="127.0.0.1")
    assert server is not None
    yield server
    server.close()


def test_a_worker_serves_its_counters_on_its_metrics_port(metrics_server: MetricsServer) -> None:
    EVENTS_PROCESSED.labels("ops-test", "ops.counted").inc()

    response = requests.get(f"http://127.0.0.1:{metrics_server.port}/metrics", timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert 'events_processed_total{consumer="ops-test",type="ops.counted"} 1.0' in response.text


def test_a_worker_answers_its_health_probe(metrics_server: MetricsServer) -> None:
    response = requests.get(f"http://127.0.0.1:{metrics_server.port}/healthz", timeout=5)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_a_worker_whose_loop_died_fails_its_health_probe() -> None:
    server = start_metrics_server(0, host="127.0.0.1", alive=lambda: False)
    assert server is not None
    try:
        response = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
    finally:
        server.close()

    assert response.status_code == 503


def test_other_paths_of_the_metrics_port_are_not_found(metrics_server: MetricsServer) -> None:
    response = requests.get(f"http://127.0.0.1:{metrics_server.port}/admin", timeout=5)

    assert response.status_code == 404


def test_no_metrics_port_configured_means_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METRICS_PORT", raising=False)

    assert start_metrics_server() is None


def test_the_port_comes_from_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_PORT", "0")  # 0: any free port, as a test needs

    server = start_metrics_server(host="127.0.0.1")

    assert server is not None
    server.close()


def test_a_malformed_metrics_port_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_PORT", "ninety")

    with pytest.raises(ValueError, match="METRICS_PORT"):
        start_metrics_server()


def test_in_multiprocess_mode_the_server_adds_up_every_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process counts three events into the shared directory, then exits.
    script = textwrap.dedent(
        """
        from prometheus_client import Counter
        done = Counter("ops_probe_done", "probe", ["worker"])
        for _ in range(3):
            done.labels("other").inc()
        """
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": ""}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    server = start_metrics_server(0, host="127.0.0.1")
    assert server is not None
    try:
        text = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    finally:
        server.close()

    assert 'ops_probe_done_total{worker="other"} 3.0' in text


@pytest.fixture
def app() -> Flask:
    """A bare app with the suite's request metrics."""
    app = create_base_app("opsmethods", __name__, {}, {"TESTING": True})

    @app.get("/thing")
    def thing() -> str:
        return "ok"

    return app


def test_an_unknown_http_method_is_counted_as_other_not_as_a_new_series(app: Flask) -> None:
    client = app.test_client()

    response = client.open("/thing", method="BREWCOFFEE")
    metrics = client.get("/metrics").get_data(as_text=True)

    assert response.status_code == 405
    assert 'method="BREWCOFFEE"' not in metrics
    assert (
        'http_requests_total{method="OTHER",route="<unmatched>",service="opsmethods",status="405"}'
        " 1.0" in metrics
    )


# -- every worker command the suite runs --------------------------------------------------

RELAY_METRICS = ["outbox_backlog ", "outbox_oldest_unsent_age_seconds "]
CONSUMER_METRICS = [
    'events_processed_total{consumer="%s"',
    'events_failed_total{consumer="%s"',
    'events_redelivered_total{consumer="%s"}',
    'events_dead_lettered_total{consumer="%s"',
    'events_transient_failures_total{consumer="%s"}',
]


def worker_commands() -> set[tuple[str, ...]]:
    """`python -m <module> [args]` of every worker in the Procfile and docker-compose.yml."""
    commands: set[tuple[str, ...]] = set()
    for line in (ROOT / "Procfile").read_text().splitlines():
        argv = shlex.split(line.partition(":")[2])
        if argv[:2] == ["python", "-m"] and argv[2].endswith(".worker"):
            commands.add(tuple(argv[2:]))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        argv = service.get("command") or []
        if argv[:2] == ["python", "-m"] and argv[2].endswith(".worker"):
            commands.add(tuple(argv[2:]))
    return commands


def expected_metrics(command: tuple[str, ...]) -> list[str]:
    """What /metrics of that worker must show, by what it does."""
    module, *args = command
    if args == ["relay"]:
        return RELAY_METRICS
    if args == ["deliver"]:
        return ["notification_delivery_attempts"]
    consumer = "gateway" if module == "gateway.worker" else module.split(".")[1]
    return [metric % consumer for metric in CONSUMER_METRICS]


def test_the_worker_commands_are_the_ones_this_test_knows() -> None:
    assert worker_commands() == {
        ("services.auth.worker", "relay"),
        ("services.orders.worker", "relay"),
        ("services.orders.worker", "consume"),
        ("services.notifications.worker", "consume"),
        ("services.notifications.worker", "deliver"),
        ("gateway.worker",),
    }


@pytest.mark.integration
def test_every_worker_command_answers_its_health_probe_and_serves_its_metrics(
    tmp_path: Path,
) -> None:
    vhost, amqp_url = create_vhost("ops-workers")
    env = process_env(
        APP_ENV="test",
        VAR_DIR=str(tmp_path),
        AMQP_URL=amqp_url,
        REDIS_URL="redis://127.0.0.1:6379/0",
        GATEWAY_REDIS_PREFIX=f"ops-{uuid.uuid4().hex[:8]}",
        METRICS_HOST="127.0.0.1",
        PYTHONPATH=str(ROOT),
    )
    for service in ("auth", "orders", "notifications"):  # SQLite files under VAR_DIR
        migrated = subprocess.run(
            [sys.executable, "-m", "flask", "--app", f"services.{service}", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr
    started: dict[tuple[str, ...], tuple[subprocess.Popen[bytes], str, Path]] = {}
    try:
        for command in sorted(worker_commands()):
            port = free_port()
            log = tmp_path / f"{'-'.join(command)}.log"
            process = spawn(
                [sys.executable, "-m", *command],
                log=log,
                env={**env, "METRICS_PORT": str(port)},
                cwd=ROOT,
            )
            started[command] = (process, f"http://127.0.0.1:{port}", log)
        for command, (process, url, log) in started.items():
            wait_until_healthy(url, process, log, timeout=60)
            metrics = requests.get(f"{url}/metrics", timeout=5)
            assert metrics.status_code == 200
            missing = [name for name in expected_metrics(command) if name not in metrics.text]
            assert not missing, f"{' '.join(command)} lacks {missing}"
    finally:
        codes = stop_processes(process for process, _url, _log in started.values())
        delete_vhost(vhost)
    assert codes == [0] * len(started), {
        " ".join(command): log.read_text()[-2000:]
        for (command, (_process, _url, log)), code in zip(started.items(), codes, strict=True)
        if code != 0
    }
