"""The real processes: gunicorn with two workers and the relay worker (integration)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pika
import pytest
import requests
import sqlalchemy as sa

from services.auth import registration
from services.auth.models import Outbox, db
from services.auth.tests.conftest import (
    AUDIENCE,
    ISSUER,
    PASSWORD,
    deps_of,
    dispose,
    make_app,
    migrate,
)
from shared.messaging import EXCHANGE, declare_exchange
from tests.support import (
    free_port,
    gunicorn_command,
    spawn,
    stop_process,
    wait_for,
    wait_until_healthy,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def served(database_factory, tmp_path_factory, amqp_url):
    """A throwaway, migrated PostgreSQL database and key directory for real processes."""
    url = database_factory("auth_proc")
    keys_dir = tmp_path_factory.mktemp("proc") / "keys"
    app = make_app(url, keys_dir, amqp_url=amqp_url)
    migrate(app)
    dispose(app)
    return {"url": url, "keys_dir": keys_dir, "app": app, "amqp_url": amqp_url}


def process_env(served, tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "test",
        "AUTH_DATABASE_URL": served["url"],
        "AUTH_SIGNING_KEYS_DIR": str(served["keys_dir"]),
        "AMQP_URL": served["amqp_url"],
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "VAR_DIR": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }


def test_a_chunked_body_over_one_mebibyte_is_refused_with_413_by_gunicorn(served, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    process = spawn(
        gunicorn_command("services.auth.wsgi:app", port=port, workers=1),
        log=log,
        env={**process_env(served, tmp_path), "SERVICE_NAME": "auth"},
        cwd=REPO,
        start_new_session=True,
    )

    def register(email: str, padding: int) -> requests.Response:
        body = json.dumps({"email": email, "password": PASSWORD, "name": "Big"}).encode()

        def chunks():  # a generator: requests sends it chunked, with no Content-Length
            yield body
            for _ in range(padding // CHUNK):
                yield b" " * CHUNK

        return requests.post(
            f"{base}/api/v1/auth/register",
            data=chunks(),
            headers={"Content-Type": "application/json"},
            timeout=20,
        )

    try:
        wait_until_healthy(base, process, log, timeout=30)
        refused = register("big@example.com", padding=3 * MIB)
        assert refused.status_code == 413, refused.text
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.json()["status"] == 413
        # Nothing was registered from the first 1 MiB, and a chunked body within the
        # limit is read whole: the same email registers now.
        accepted = register("big@example.com", padding=MIB // 2)
        assert accepted.status_code == 202, accepted.text
    finally:
        assert stop_process(process, timeout=20) == 0


def test_the_login_throttle_holds_across_two_gunicorn_workers(served, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    # The suite's production settings (threaded workers), with two workers and a
    # gunicorn access log that names the worker pid of every request.
    command = gunicorn_command(
        "services.auth.wsgi:app",
        port=port,
        workers=2,
        options=["--access-logfile", "-", "--access-logformat", "ACCESS pid=%(p)s path=%(U)s"],
    )
    process = spawn(
        command,
        log=log,
        env={**process_env(served, tmp_path), "SERVICE_NAME": "auth"},
        cwd=REPO,
        start_new_session=True,
    )
    try:
        wait_until_healthy(base, process, log, timeout=30)

        def both_workers_answered() -> bool:
            # New connections until each worker has taken one: on a loaded machine the
            # second worker can boot seconds after the first already answers.
            requests.get(f"{base}/healthz", timeout=5, headers={"Connection": "close"})
            return len(set(re.findall(r"ACCESS pid=<(\d+)>", log.read_text()))) == 2

        wait_for(both_workers_answered, timeout=30, what="both gunicorn workers answering")
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        body = {"email": email, "password": PASSWORD, "name": "Ada"}
        assert (
            requests.post(f"{base}/api/v1/auth/register", json=body, timeout=10).status_code == 202
        )

        def wrong_login(_: int) -> requests.Response:
            return requests.post(
                f"{base}/api/v1/auth/login",
                json={"email": email, "password": "wrong " + PASSWORD},
                timeout=20,
            )

        # Concurrent guesses keep both workers (and their threads) busy; counting per process
        # would let up to 10 through.
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(wrong_login, range(16)))
        statuses = [answer.status_code for answer in answers]
        assert set(statuses) <= {401, 429}, statuses
        throttled = next(answer for answer in answers if answer.status_code == 429)
        assert throttled.headers["Content-Type"] == "application/problem+json"
        assert 0 < int(throttled.headers["Retry-After"]) <= 901

        # The promise is "at most five guesses per window", the right password included: a
        # guess the throttle refused was never checked. Attempts racing each other can all
        # step back and leave fewer than five recorded; then the right password still gets
        # its turn, but never as a sixth guess.
        right = requests.post(
            f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
        )
        assert right.status_code in (200, 429), right.text
        checked = statuses.count(401) + (right.status_code == 200)
        assert 1 <= checked <= 5, (statuses, right.status_code)
    finally:
        assert stop_process(process, timeout=20) == 0
    pids = set(re.findall(r"ACCESS pid=<(\d+)> path=/api/v1/auth/login", log.read_text()))
    assert len(pids) == 2, f"expected both workers to serve logins; saw {pids}"


def test_the_relay_worker_publishes_and_stops_gracefully_on_sigterm(served, tmp_path):
    app = served["app"]
    with app.app_context():
        registration.register_user(
            session=db.session(),
            deps=deps_of(app),
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            password=PASSWORD,
            name="Relay",
        )
        db.session.commit()
        event_ids = set(
            db.session.scalars(sa.select(Outbox.event_id).where(Outbox.sent_at.is_(None)))
        )

    connection = pika.BlockingConnection(pika.URLParameters(served["amqp_url"]))
    try:
        channel = connection.channel()
        declare_exchange(channel)
        queue = channel.queue_declare(queue="", exclusive=True).method.queue
        # A registration records the user and its verification link; the relay publishes
        # with `mandatory`, so both need a queue.
        for key in ("user.registered", "user.verification_requested"):
            channel.queue_bind(queue=queue, exchange=EXCHANGE, routing_key=key)

        log = tmp_path / "relay.log"
        process = spawn(
            [sys.executable, "-m", "services.auth.worker", "relay"],
            log=log,
            env=process_env(served, tmp_path),
            cwd=REPO,
            start_new_session=True,
        )
        try:
            received: set[str] = set()
            deadline = time.monotonic() + 30
            while received != event_ids and time.monotonic() < deadline:
                method, properties, _body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    connection.sleep(0.1)
                else:
                    received.add(properties.message_id)
            assert received == event_ids, log.read_text()[-3000:]
        finally:
            returncode = stop_process(process, timeout=20)
    finally:
        connection.close()
    output = log.read_text()
    assert returncode == 0, output[-3000:]
    assert "outbox relay stopped" in output
    with app.app_context():
        sent = db.session.scalars(sa.select(Outbox.sent_at).where(Outbox.event_id.in_(event_ids)))
        assert all(at is not None for at in sent)
    dispose(app)
