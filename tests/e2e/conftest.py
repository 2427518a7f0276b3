"""The whole suite as deployed, started once for the e2e module.

Every process runs for real: auth, orders and notifications under gunicorn with their
relays and consumers, the gateway under gunicorn with its revocation worker, each
service on its own fresh PostgreSQL database, all on a fresh RabbitMQ vhost and a Redis
key prefix of their own. Tests talk to the gateway only.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
import requests

from bench.suite import Suite, SuiteError, SuiteOptions
from shared.messaging import EXCHANGE
from tests.contracts.asyncapi_check import validate_against_asyncapi
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "admin@e2e.example.com"
ADMIN_PASSWORD = "e2e admin passphrase 2024!"
PASSWORD = "correct horse battery staple 42"
# Background processes besides gunicorn (the notifications delivery worker is not needed:
# the e2e checks in-app notifications).
E2E_WORKERS = (
    "auth.relay",
    "orders.relay",
    "orders.consume",
    "notifications.consume",
    "gateway.worker",
)

# Polls through the gateway come at most ten a second, well within its rate limits.
GATEWAY_POLL_INTERVAL = 0.1


def e2e_options(
    base_dir: Path, *, workers: tuple[str, ...] = E2E_WORKERS, **extra_env: str
) -> SuiteOptions:
    """The e2e's settings: a cheap argon2, short retries, a bootstrap admin; plus `extra_env`."""
    return SuiteOptions(
        workers=1,
        log_level=os.environ.get("E2E_LOG_LEVEL", "WARNING"),
        workers_to_start=workers,
        base_dir=base_dir,
        extra_env={
            "JWT_AUDIENCE": "flask-suite-e2e",
            "AUTH_ARGON2_TIME_COST": "1",
            "AUTH_ARGON2_MEMORY_KIB": "1024",
            "AUTH_BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
            "AUTH_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "EVENT_RETRY_DELAYS": "0.5,1,2",
            **extra_env,
        },
    )


def run_suite(options: SuiteOptions) -> Iterator[Suite]:
    """The running suite for a module fixture to yield; a start-up failure fails the test."""
    try:
        with Suite(options) as running:
            yield running
    except SuiteError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Iterator[Suite]:
    """The suite as deployed, from the one launcher the benchmark uses too (bench/suite.py).

    Its own databases, vhost (the e2e's retry delays declare the queues) and Redis prefix;
    the e2e's settings on top: a cheap argon2, short retries and a bootstrap admin.
    """
    yield from run_suite(e2e_options(tmp_path_factory.mktemp("e2e")))


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
            self.suite.url("gateway", "/api/v1/auth/login"),
            json={"email": self.email, "password": self.password},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return self

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the API through the gateway."""
        return self.http.request(method, self.suite.url("gateway", path), timeout=10, **kwargs)


@pytest.fixture(scope="module")
def register(suite: Suite) -> Callable[[str], Client]:
    """Register a new user and return them logged in."""

    def make(name: str) -> Client:
        email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@e2e.example.com"
        response = requests.post(
            suite.url("gateway", "/api/v1/auth/register"),
            json={"email": email, "password": PASSWORD, "name": name},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        client = Client(suite, email, PASSWORD).login()
        # An unverified account may log in and order; it only receives no mail yet.
        client.user_id = client.request("GET", "/api/v1/auth/me").json()["id"]
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


TAP_QUEUE = "e2e.tap"


@pytest.fixture(scope="module")
def broker_tap(suite: Suite) -> Iterator[None]:
    """Copy every event published during the module; at its end, each must fit /asyncapi.json.

    A queue of the test's own, bound to `#` on the events exchange, sees what every
    producer published, exactly as the consuming services' queues receive it.
    """
    with pika.BlockingConnection(pika.URLParameters(suite.amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_declare(TAP_QUEUE, durable=True)
        channel.queue_bind(TAP_QUEUE, EXCHANGE, routing_key="#")
    yield
    document = requests.get(suite.url("gateway", "/asyncapi.json"), timeout=10).json()
    seen: list[str] = []
    with pika.BlockingConnection(pika.URLParameters(suite.amqp_url)) as connection:
        channel = connection.channel()
        while True:
            method, _properties, body = channel.basic_get(TAP_QUEUE, auto_ack=True)
            if method is None:
                break
            event = json.loads(body)
            validate_against_asyncapi(event, document)
            seen.append(event["type"])
        channel.queue_delete(TAP_QUEUE)
    # The module places orders and changes them: a tap that saw nothing proves nothing.
    assert {"user.registered", "order.created", "order.status_changed"} <= set(seen), seen
