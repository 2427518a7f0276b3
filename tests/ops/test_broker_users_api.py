"""`python -m shared.broker_users apply`, as compose and the Kubernetes Job run it, against a
recording stand-in for RabbitMQ's management API (no management plugin on the test broker):
it sets exactly what the test harness sets with rabbitmqctl."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.broker_users import USERS, rabbitmqctl_commands

from .conftest import ROOT, process_env

PASSWORDS = {u.service: f"pw-{u.service}" for u in USERS}


@pytest.fixture
def management_api() -> Iterator[tuple[str, list[tuple[str, str, dict[str, Any]]]]]:
    """(URL, [(authorization, path, body)]) of a server answering every PUT with 204."""
    calls: list[tuple[str, str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.end_headers()

        def do_PUT(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append((self.headers["Authorization"], self.path, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", calls
    finally:
        server.shutdown()
        server.server_close()


def run_apply(api_url: str, **extra: str) -> subprocess.CompletedProcess[str]:
    settings = {
        "RABBITMQ_API_URL": api_url,
        "RABBITMQ_ADMIN_USER": "admin",
        "RABBITMQ_ADMIN_PASSWORD": "admin-pw",
        **{u.password_variable(): PASSWORDS[u.service] for u in USERS},
        **extra,
    }
    env = process_env(**settings)
    return subprocess.run(
        [sys.executable, "-m", "shared.broker_users", "apply", "--wait", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_apply_sets_through_the_api_what_the_harness_sets_with_rabbitmqctl(management_api):
    url, calls = management_api

    result = run_apply(url)

    assert result.returncode == 0, result.stderr
    admin = "Basic " + base64.b64encode(b"admin:admin-pw").decode()
    assert {authorization for authorization, _, _ in calls} == {admin}
    through_api = set()
    for _, path, body in calls:
        kind, vhost, *user = path.removeprefix("/api/").split("/")
        if kind == "users":
            through_api.add(("add_user", vhost, body["password"]))
        elif kind == "permissions":
            through_api.add(
                (
                    "set_permissions",
                    "-p",
                    "/",
                    user[0],
                    body["configure"],
                    body["write"],
                    body["read"],
                )
            )
        else:
            through_api.add(
                (
                    "set_topic_permissions",
                    "-p",
                    "/",
                    user[0],
                    body["exchange"],
                    body["write"],
                    body["read"],
                )
            )
    assert through_api == {tuple(command) for command in rabbitmqctl_commands("/", PASSWORDS)}


def test_apply_refuses_to_run_without_every_password(management_api):
    url, calls = management_api

    result = run_apply(url, RABBITMQ_ORDERS_PASSWORD="")

    assert result.returncode != 0
    assert "RABBITMQ_ORDERS_PASSWORD" in result.stderr
    assert calls == []
