"""The whole suite as deployed, started once for the e2e module.

Every process runs for real: auth, orders and notifications under gunicorn with their
relays and consumers, the gateway under gunicorn with its revocation worker, each
service on its own fresh PostgreSQL database, all on a fresh RabbitMQ vhost and a Redis
key prefix of their own. Tests talk to the gateway only.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.testing import (
    create_vhost,
    delete_vhost,
    free_port,
    gunicorn_command,
    spawn,
    stop_processes,
    wait_for,
    wait_until_healthy,
)

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_EMAIL = "admin@e2e.example.com"
ADMIN_PASSWORD = "e2e admin passphrase 2024!"
PASSWORD = "correct horse battery staple 42"
SERVICES = ("auth", "orders", "notifications")
# Background processes per service, besides gunicorn.
WORKERS = {
    "auth": [["-m", "services.auth.worker", "relay"]],
    "orders": [
        ["-m", "services.orders.worker", "relay"],
        ["-m", "services.orders.worker", "consume"],
    ],
    "notifications": [["-m", "services.notifications.worker", "consume"]],
    "gateway": [["-m", "gateway.worker"]],
}


# Polls through the gateway come at most ten a second, well within its rate limits.
GATEWAY_POLL_INTERVAL = 0.1


@dataclass
class Suite:
    """The running suite: the gateway's URL and every process, for clean-up."""

    gateway: str
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def url(self, path: str) -> str:
        """Absolute URL of a path behind the gateway."""
        return self.gateway + path


@pytest.fixture(scope="module")
def e2e_amqp_url() -> Iterator[str]:
    """A vhost of the e2e run alone: the services declare their queues with the e2e's retry
    delays, which other tests of the session may have declared differently."""
    vhost, url = create_vhost("e2e")
    yield url
    delete_vhost(vhost)


@pytest.fixture(scope="module")
def suite(e2e_amqp_url: str, database_factory, tmp_path_factory) -> Iterator[Suite]:
    """Migrate three databases, start every process, wait until the gateway routes."""
    amqp_url = e2e_amqp_url
    logs = tmp_path_factory.mktemp("e2e")
    ports = {name: free_port() for name in (*SERVICES, "gateway")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "AMQP_URL": amqp_url,
        "REDIS_URL": REDIS_URL,
        "JWT_ISSUER": f"{urls['gateway']}/api/v1/auth",
        "JWT_AUDIENCE": "flask-suite-e2e",
        "JWKS_URL": f"{urls['auth']}/api/v1/auth/jwks.json",
        "AUTH_URL": urls["auth"],
        "ORDERS_URL": urls["orders"],
        "NOTIFICATIONS_URL": urls["notifications"],
        "AUTH_SIGNING_KEYS_DIR": str(logs / "keys"),
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_KIB": "1024",
        "AUTH_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
        "AUTH_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "EVENT_RETRY_DELAYS": "0.5,1,2",
        "GATEWAY_REDIS_PREFIX": prefix,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(free_port()),
        "VAR_DIR": str(logs),
        "LOG_LEVEL": os.environ.get("E2E_LOG_LEVEL", "WARNING"),
        **{f"{name.upper()}_DATABASE_URL": database_factory(name) for name in SERVICES},
    }
    (logs / "keys").mkdir()

    migrations = [
        spawn(
            [sys.executable, "-m", "flask", "--app", "services.auth", "prepare"],
            log=logs / "migrate-auth.log",
            env=env,
            cwd=ROOT,
        ),
        *(
            spawn(
                [sys.executable, "-m", "flask", "--app", f"services.{name}", "db", "upgrade"],
                log=logs / f"migrate-{name}.log",
                env=env,
                cwd=ROOT,
            )
            for name in ("orders", "notifications")
        ),
    ]
    for process, name in zip(migrations, SERVICES, strict=True):
        if process.wait(timeout=60) != 0:
            pytest.fail(f"{name} migration failed:\n{(logs / f'migrate-{name}.log').read_text()}")

    suite = Suite(gateway=urls["gateway"], logs=logs)
    web: dict[str, subprocess.Popen] = {}
    try:
        for name in (*SERVICES, "gateway"):
            service_env = {**env, "SERVICE_NAME": name}
            app = "gateway.wsgi:app" if name == "gateway" else f"services.{name}.wsgi:app"
            web[name] = spawn(
                gunicorn_command(app, port=ports[name], workers=1, threads=4),
                log=logs / f"{name}.log",
                env=service_env,
                cwd=ROOT,
            )
            suite.processes.append(web[name])
            for index, args in enumerate(WORKERS[name]):
                suite.processes.append(
                    spawn(
                        [sys.executable, *args],
                        log=logs / f"{name}-worker{index}.log",
                        env=service_env,
                        cwd=ROOT,
                    )
                )
        for name, url in urls.items():
            wait_until_healthy(url, web[name], logs / f"{name}.log", timeout=40)
        yield suite
    finally:
        stop_processes(suite.processes, timeout=20)
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


class Client:
    """A user of the API, through the gateway only."""

    def __init__(self, suite: Suite, email: str, password: str) -> None:
        self.suite = suite
        self.email = email
        self.password = password
        self.http = requests.Session()
        self.user_id: str | None = None

    def login(self) -> Client:
        """Log in and keep the access token for later calls."""
        response = self.http.post(
            self.suite.url("/api/v1/auth/login"),
            json={"email": self.email, "password": self.password},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return self

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the API through the gateway."""
        return self.http.request(method, self.suite.url(path), timeout=10, **kwargs)


@pytest.fixture(scope="module")
def register(suite: Suite) -> Callable[[str], Client]:
    """Register a new user and return them logged in."""

    def make(name: str) -> Client:
        email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@e2e.example.com"
        response = requests.post(
            suite.url("/api/v1/auth/register"),
            json={"email": email, "password": PASSWORD, "name": name},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        client = Client(suite, email, PASSWORD).login()
        client.user_id = response.json()["id"]
        return client

    return make


@pytest.fixture(scope="module")
def admin(suite: Suite) -> Client:
    """The bootstrap admin (AUTH_BOOTSTRAP_ADMIN_EMAIL/PASSWORD), logged in."""
    return Client(suite, ADMIN_EMAIL, ADMIN_PASSWORD).login()


@pytest.fixture(name="wait_for")
def gateway_wait_for() -> Callable[..., Any]:
    """wait_for(predicate, timeout=..., what=...) polling the gateway: an eventual effect."""
    return functools.partial(wait_for, interval=GATEWAY_POLL_INTERVAL)
