"""The whole suite as deployed, started once for the e2e modules that share it.

Every process runs for real: auth, orders and notifications under gunicorn with their
relays and consumers, the notifications delivery worker and an SMTP sink, the gateway under
gunicorn with its revocation worker, each service on its own fresh PostgreSQL database, all
on a fresh RabbitMQ vhost and a Redis key prefix of their own. Tests talk to the gateway
only, each as users of its own, so the modules can share one running suite: starting it
takes most of an e2e module's time. A module that needs other settings (spans exported, no
rate limits) defines a `suite` fixture of its own; those modules run after the shared ones,
which stop first.
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
from tests.support import unmeasured_processes, wait_for

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
# The shared suite also sends mail (the SDK's walk-through opens the verification link
# from the sink's directory) and webhooks (to a receiver on this machine).
SHARED_WORKERS = (*E2E_WORKERS, "notifications.deliver", "notifications.smtp")

# Polls through the gateway come at most ten a second, well within its rate limits.
GATEWAY_POLL_INTERVAL = 0.1


def e2e_options(
    base_dir: Path, *, workers: tuple[str, ...] = E2E_WORKERS, **extra_env: str
) -> SuiteOptions:
    """The e2e's settings: a cheap argon2, short retries, a bootstrap admin; plus `extra_env`."""
    return SuiteOptions(
        workers=1,
        # Under `make test` the suite starts beside other tests on two cores.
        start_timeout=120.0,
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
    """The running suite for a fixture to yield; a start-up failure fails the test.

    Its processes run without coverage (the environment they all get is taken at start).
    """
    running = Suite(options)
    try:
        with unmeasured_processes():
            running.start()
    except SuiteError as exc:
        pytest.fail(str(exc))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module", autouse=True)
def _unmeasured(processes_without_coverage: None) -> None:
    """What an e2e module starts besides a suite (`make run`, the fuzzer, a restarted
    worker) runs without coverage too."""


# The shared suite while it runs, for the hook below to stop it once its modules are done.
_shared: dict[str, Suite] = {}


@pytest.fixture(scope="session")
def suite(tmp_path_factory) -> Iterator[Suite]:
    """The suite as deployed, from the one launcher the benchmark uses too (bench/suite.py).

    Its own databases, vhost (the e2e's retry delays declare the queues) and Redis prefix;
    the e2e's settings on top: a cheap argon2, short retries and a bootstrap admin, webhooks
    allowed to this machine. Shared by every module without a `suite` of its own.
    """
    options = e2e_options(
        tmp_path_factory.mktemp("e2e"),
        workers=SHARED_WORKERS,
        NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE="true",
    )
    for running in run_suite(options):
        _shared["suite"] = running
        yield running
        _shared.pop("suite", None)


# The modules whose tests run on the shared suite; the others start a suite (or `make run`)
# of their own. Named here, not only found, so `make test` can give them to one worker
# (conftest.py at the root).
SHARED_SUITE_MODULES = frozenset(
    {"test_alerts.py", "test_clients.py", "test_docs_page.py", "test_sdk.py", "test_suite.py"}
)


def _on_shared_suite(item: pytest.Item) -> bool:
    """True for a test that uses the shared suite, not a module's own."""
    return item.path.parent == Path(__file__).parent and item.path.name in SHARED_SUITE_MODULES


def _uses_shared_suite(item: pytest.Item) -> bool:
    """What the test's fixtures say: `suite` among them, and not a module's own."""
    return "suite" in getattr(item, "fixturenames", ()) and not hasattr(
        getattr(item, "module", None), "suite"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The e2e tests on the shared suite first, then the rest, each in its own order.

    So the shared suite can stop before a module starts a suite (or `make run`) of its own,
    rather than sit beside it through the rest of the run.
    """
    here = Path(__file__).parent
    places = [i for i, item in enumerate(items) if item.path.parent == here]
    for i in places:
        if _on_shared_suite(items[i]) != _uses_shared_suite(items[i]):
            raise pytest.UsageError(
                f"{items[i].path.name}: list it in SHARED_SUITE_MODULES (tests/e2e/conftest.py)"
                " exactly when its tests use the shared `suite`"
            )
    ordered = sorted((items[i] for i in places), key=lambda item: not _on_shared_suite(item))
    for place, item in zip(places, ordered, strict=True):
        items[place] = item


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Stop the shared suite after the last test on it, once its modules' fixtures are done."""
    yield
    if "suite" in _shared and (nextitem is None or not _on_shared_suite(nextitem)):
        _shared.pop("suite").stop()


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
