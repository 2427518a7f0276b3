"""What an operator sees of a web process under gunicorn with the suite's config.

One gunicorn (two sync workers, so that concurrent requests land on different workers)
serves the probe app for the whole module.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from .conftest import Server, start_probe_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """gunicorn with two sync workers: a busy worker accepts nothing, the other one does."""
    directory = tmp_path_factory.mktemp("web")
    started = start_probe_server(directory, WEB_CONCURRENCY="2", GUNICORN_WORKER_CLASS="sync")
    yield started
    started.stop()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sample of `name` whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(sample_labels.get(key) == value for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def slow_pair(url: str) -> set[int]:
    """Two concurrent slow requests; the worker pids that answered them."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(
            pool.map(lambda _: requests.get(f"{url}/slow?seconds=0.4", timeout=10), range(2))
        )
    assert all(response.status_code == 200 for response in responses)
    return {response.json()["pid"] for response in responses}


def test_metrics_count_the_requests_of_every_gunicorn_worker(server: Server) -> None:
    before = requests.get(f"{server.url}/metrics", timeout=5).text
    served = 0
    pids: set[int] = set()
    # The second worker may still be booting on the first try.
    for _ in range(5):
        pids = slow_pair(server.url)
        served += 2
        if len(pids) == 2:
            break
    assert len(pids) == 2, "both workers should have answered"

    after = requests.get(f"{server.url}/metrics", timeout=5).text
    labels = {"service": "probe", "method": "GET", "route": "/slow"}
    counted = metric_value(after, "http_requests_total", status="200", **labels)
    counted -= metric_value(before, "http_requests_total", status="200", **labels)
    timed = metric_value(after, "http_request_duration_seconds_count", status="200", **labels)
    timed -= metric_value(before, "http_request_duration_seconds_count", status="200", **labels)
    assert counted == served
    assert timed == served


def test_latency_is_timed_by_route_and_status_with_bounded_labels(server: Server) -> None:
    before = requests.get(f"{server.url}/metrics", timeout=5).text
    statuses = [
        requests.get(f"{server.url}{path}", timeout=5).status_code
        for path in ("/status/201", "/status/409", "/status/409", "/status/799", "/no/such/42")
    ]
    assert statuses == [201, 409, 409, 799, 404]

    after = requests.get(f"{server.url}/metrics", timeout=5).text

    def timed(route: str, status: str) -> float:
        name = "http_request_duration_seconds_count"
        labels = {"service": "probe", "method": "GET", "route": route, "status": status}
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert timed("/status/<int:code>", "201") == 1
    assert timed("/status/<int:code>", "409") == 2
    # An unregistered code, and a path that matches no route, make no series of their own.
    assert timed("/status/<int:code>", "other") == 1
    assert timed("<unmatched>", "404") == 1
    assert 'status="799"' not in after
    assert "/no/such/42" not in after


def test_responses_do_not_name_the_server(server: Server) -> None:
    response = requests.get(f"{server.url}/pid", timeout=5)

    assert response.status_code == 200
    assert "Server" not in response.headers


def test_each_request_logs_one_json_line_with_its_trace_id(server: Server) -> None:
    trace_id = secrets.token_hex(16)
    response = requests.get(
        f"{server.url}/pid",
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        timeout=5,
    )
    assert response.status_code == 200

    lines = [json.loads(line) for line in server.json_lines()]  # every line is JSON
    mine = [line for line in lines if line.get("trace_id") == trace_id]
    assert len(mine) == 1
    assert mine[0]["route"] == "/pid"
    assert mine[0]["status"] == 200
    assert mine[0]["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["traceparent"].split("-")[1] == trace_id


def test_the_metrics_directory_is_removed_when_gunicorn_stops(tmp_path: Path) -> None:
    server = start_probe_server(tmp_path, WEB_CONCURRENCY="1")
    # Where shared.gunicorn_conf puts it when PROMETHEUS_MULTIPROC_DIR is not given.
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    directory = base / f"prometheus-probe-{server.process.pid}"
    assert any(directory.glob("*.db"))

    assert server.stop() == 0
    assert not directory.exists()
