"""The gateway as deployed: gunicorn with two workers, Redis, the revocation worker.

What one process cannot show: a rate limit and a revocation hold in EVERY worker. The
access log names the worker (pid) that answered each request, so the tests can tell.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from gateway.tests.conftest import AUDIENCE, ISSUER, JWKS, bearer
from gateway.tests.fakes import FakeUpstream
from gateway.tests.test_revocation import deactivated, publish_when_routable
from tests.support import (
    create_vhost,
    delete_vhost,
    free_port,
    gunicorn_command,
    spawn,
    stop_processes,
    wait_until_healthy,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
USER_LIMIT = 20


@dataclass
class Deployment:
    """A running gateway: its URL and the access log that names each answering worker."""

    url: str
    access_log: Path

    def answers(self, path: str, count: int) -> list[tuple[str, str]]:
        """(pid, status) of the requests to `path`, once `count` of them are logged."""
        deadline = time.monotonic() + 5
        while True:
            found = []
            for line in self.access_log.read_text().splitlines():
                pid, status, logged_path = line.split(" ", 2)
                if logged_path == path:
                    found.append((pid, status))
            # gunicorn logs a request just after answering it: give the last ones a moment.
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@pytest.fixture(scope="module")
def amqp_url() -> Iterator[str]:
    """A vhost of this module alone (the revocation worker declares fixed queue arguments)."""
    vhost, url = create_vhost("gateway")
    yield url
    delete_vhost(vhost)


@pytest.fixture(scope="module")
def deployment(amqp_url: str, tmp_path_factory) -> Iterator[Deployment]:
    """gunicorn -w 2 gateway.wsgi:app + python -m gateway.worker, against Redis and RabbitMQ."""
    logs = tmp_path_factory.mktemp("gateway")
    upstream = FakeUpstream(jwks=JWKS).start()
    port = free_port()
    prefix = f"gw-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "SERVICE_NAME": "gateway",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "JWKS_URL": f"{upstream.url}/api/v1/auth/jwks.json",
        "AUTH_URL": upstream.url,
        "ORDERS_URL": upstream.url,
        "NOTIFICATIONS_URL": upstream.url,
        "AMQP_URL": amqp_url,
        "REDIS_URL": REDIS_URL,
        "GATEWAY_REDIS_PREFIX": prefix,
        "GATEWAY_RATE_LIMIT_USER": f"{USER_LIMIT}/minute",
        "GATEWAY_RATE_LIMIT_IP": "10000/minute",
        "PROMETHEUS_MULTIPROC_DIR": str(logs / "metrics"),
        "LOG_LEVEL": "WARNING",
    }
    (logs / "metrics").mkdir()
    access_log = logs / "access.log"
    access_log.touch()
    worker = spawn(
        [sys.executable, "-m", "gateway.worker"], log=logs / "worker.out", env=env, cwd=ROOT
    )
    web = spawn(
        gunicorn_command(
            "gateway.wsgi:app",
            port=port,
            workers=2,
            threads=4,
            options=[
                "--access-logfile",
                str(access_log),
                "--access-logformat",
                "%(p)s %(s)s %(U)s",
            ],
        ),
        log=logs / "gunicorn.out",
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, web, logs / "gunicorn.out", timeout=30)
        yield Deployment(url=url, access_log=access_log)
    finally:
        stop_processes([web, worker])
        upstream.stop()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"*{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def one_connection_per_worker(deployment: Deployment) -> Iterator[list[requests.Session]]:
    """Two keep-alive sessions, each pinned to a different worker (told by the access log).

    Which worker accepts a new connection is up to the kernel; a kept-alive connection stays
    with its worker, so requests on these sessions reach a known, different worker each.
    """
    by_pid: dict[str, requests.Session] = {}
    spare: list[requests.Session] = []
    # Time-bound rather than a count: on a loaded machine the second worker may boot
    # seconds after the first is already answering.
    deadline = time.monotonic() + 30
    attempt = 0
    while len(by_pid) < 2 and time.monotonic() < deadline:
        attempt += 1
        session = requests.Session()
        path = f"/api/v1/orders/pin-{uuid.uuid4().hex[:8]}"
        assert session.get(deployment.url + path, headers=bearer(f"pin-{attempt}")).ok
        ((pid, _),) = deployment.answers(path, 1)
        if pid in by_pid:
            spare.append(session)
        else:
            by_pid[pid] = session
    for session in spare:
        session.close()
    assert len(by_pid) == 2, "the kernel gave every connection to the same worker"
    yield list(by_pid.values())
    for session in by_pid.values():
        session.close()


def test_the_user_limit_holds_across_both_workers(deployment, one_connection_per_worker):
    path = f"/api/v1/orders/limit-{uuid.uuid4().hex[:6]}"
    headers = bearer(f"busy-{uuid.uuid4().hex[:6]}")

    responses = [
        one_connection_per_worker[i % 2].get(deployment.url + path, headers=headers)
        for i in range(USER_LIMIT + 10)
    ]

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == USER_LIMIT
    assert statuses.count(429) == 10
    refused = responses[-1]
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Limit"] == str(USER_LIMIT)
    assert "Server" not in refused.headers
    answers = deployment.answers(path, USER_LIMIT + 10)
    assert len({pid for pid, status in answers if status == "429"}) == 2


def test_a_deactivation_reaches_both_workers_within_two_seconds(
    deployment, one_connection_per_worker, amqp_url
):
    user = f"leaving-{uuid.uuid4().hex[:6]}"
    path = f"/api/v1/orders/revocation-{user}"
    headers = bearer(user, iat=int(time.time()) - 5)

    def statuses() -> list[int]:
        return [
            s.get(deployment.url + path, headers=headers).status_code
            for s in one_connection_per_worker
        ]

    assert statuses() == [200, 200]
    publish_when_routable(amqp_url, deactivated(user))
    published = time.monotonic()
    while (seen := statuses()) != [401, 401]:
        assert time.monotonic() - published < 2.0, f"still accepted after 2 s: {seen}"
        time.sleep(0.02)

    assert time.monotonic() - published < 2.0
    answers = deployment.answers(path, 4)
    assert len({pid for pid, status in answers if status == "401"}) == 2
