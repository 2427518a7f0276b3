"""Seeding the suite for a run, the baselines beside it, and waiting for its pipeline to idle."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pika
import psycopg
import requests

from bench import events as ev
from bench.suite import Suite, gunicorn_argv
from shared.messaging import declare_topology, queue_name
from tests import support
from tests.support import WaitTimeout, free_port, wait_for

BASELINE_ROWS = 10_000


@dataclass
class User:
    """A seeded account and its access token."""

    id: str
    email: str
    password: str
    token: str


# -- seeding -------------------------------------------------------------------------------


def http_session() -> requests.Session:
    """A requests session that ignores proxy settings of the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def register_users(suite: Suite, count: int, label: str = "bench") -> list[User]:
    """Register, verify (with the mailed link) and log in `count` users directly at auth.

    Argon2 as in production; verified, so their notifications are mailed as in production.
    """

    def one(n: int) -> User:
        http = http_session()
        email = f"{label}-{n}-{uuid.uuid4().hex[:8]}@bench.example.com"
        password = f"bench-{uuid.uuid4().hex[:16]}"
        created = http.post(
            suite.url("auth", "/api/v1/auth/register"),
            json={"email": email, "password": password, "name": f"Bench User {n}"},
            timeout=30,
        )
        if created.status_code != 202:
            raise RuntimeError(f"register answered {created.status_code}: {created.text}")
        link = support.verification_link(suite.dir / "mail", email, timeout=120)
        token = parse_qs(urlsplit(link).query)["token"][0]
        verified = http.post(
            suite.url("auth", "/api/v1/auth/verify-email"), json={"token": token}, timeout=30
        )
        if verified.status_code != 200:
            raise RuntimeError(f"verify-email answered {verified.status_code}: {verified.text}")
        login = http.post(
            suite.url("auth", "/api/v1/auth/login"),
            json={"email": email, "password": password},
            timeout=30,
        )
        if login.status_code != 200:
            raise RuntimeError(f"login answered {login.status_code}: {login.text}")
        return User(verified.json()["id"], email, password, login.json()["access_token"])

    with ThreadPoolExecutor(max_workers=4) as executor:
        return list(executor.map(one, range(count)))


def seed_orders(suite: Suite, users: Sequence[User], per_user: int) -> list[tuple[str, str]]:
    """Place orders for every user directly at orders; (token, order id) pairs."""
    url = suite.url("orders", "/api/v1/orders")
    jobs = [user for user in users for _ in range(per_user)]

    def one(user: User) -> tuple[str, str]:
        response = http_session().post(
            url, json=ev.ORDER_BODY, headers={"Authorization": f"Bearer {user.token}"}, timeout=30
        )
        if response.status_code != 201:
            raise RuntimeError(f"seeding an order answered {response.status_code}: {response.text}")
        return user.token, str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=8) as executor:
        return list(executor.map(one, jobs))


def start_baseline(suite: Suite, db_url: str) -> str:
    """Fill the baseline's tables and start it under the same gunicorn settings; its URL."""
    with psycopg.connect(ev.libpq_url(db_url), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL,"
            " price_cents integer NOT NULL)"
        )
        conn.execute(
            "INSERT INTO items SELECT n, 'item ' || n, n %% 10000 FROM generate_series(1, %s) n",
            (BASELINE_ROWS,),
        )
        conn.execute("VACUUM ANALYZE items")
        conn.execute(
            "CREATE TABLE placed (id bigserial PRIMARY KEY, currency text NOT NULL,"
            " body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    port = free_port()
    suite.spawn(
        "baseline",
        gunicorn_argv(
            "bench.baseline_app:app",
            port,
            workers=suite.options.workers,
            threads=suite.options.threads,
        ),
        {"SERVICE_NAME": "baseline", "BASELINE_DATABASE_URL": ev.libpq_url(db_url)},
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers_ok(f"{url}/items/1"), timeout=30, what="baseline answering")
    return url


def answers_ok(url: str, headers: Mapping[str, str] | None = None) -> bool:
    """True when a GET of url answers 200."""
    try:
        return http_session().get(url, headers=headers, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class BaselineConsumer:
    """The plain pika consumer, its own vhost and the table it writes."""

    amqp_url: str
    vhost: str
    db_url: str
    queue: str


def start_baseline_consumer(suite: Suite, db_url: str) -> BaselineConsumer:
    """A vhost whose quorum queue is declared like a service's, and the consumer on it."""
    from bench.baseline_consumer import TABLE

    vhost, amqp_url = support.create_vhost("bench-baseline")
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        declare_topology(
            connection.channel(),
            "bench-baseline",
            ["order.created"],
            delivery_limit=5,
            retry_delays=[1],
        )
    with psycopg.connect(ev.libpq_url(db_url), autocommit=True) as conn:
        conn.execute(TABLE)
    queue = queue_name("bench-baseline")
    suite.spawn(
        "baseline.consume",
        [sys.executable, "-m", "bench.baseline_consumer", queue],
        {
            "SERVICE_NAME": "baseline",
            "BASELINE_AMQP_URL": amqp_url,
            "BASELINE_DATABASE_URL": ev.libpq_url(db_url),
        },
    )

    def consuming() -> bool:
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            frame = connection.channel().queue_declare(queue=queue, passive=True)
            return int(frame.method.consumer_count) > 0

    wait_for(consuming, timeout=60, what="baseline consumer consuming")
    return BaselineConsumer(amqp_url, vhost, db_url, queue)


# -- waiting for the event pipeline to be idle ---------------------------------------------


def settle(suite: Suite, *, deliveries: bool = True, timeout: float = 180.0) -> float:
    """Wait until no event is in flight (outbox sent, queue empty, no delivery due); seconds.

    `deliveries=False` does not wait for the emails (quick mode): the delivery worker may
    then still be sending while the next measurement runs.
    """
    started = time.monotonic()
    orders_db = ev.libpq_url(suite.database_urls["orders"])
    notifications_db = ev.libpq_url(suite.database_urls["notifications"])

    def idle() -> bool:
        with psycopg.connect(orders_db, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
            if row is None or row[0]:
                return False
        if deliveries:
            with psycopg.connect(notifications_db, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM deliveries WHERE status = 'pending'"
                    " AND next_attempt_at <= now()"
                ).fetchone()
                if row is None or row[0]:
                    return False
        with pika.BlockingConnection(pika.URLParameters(suite.amqp_url)) as connection:
            frame = connection.channel().queue_declare(
                queue=queue_name("notifications"), passive=True
            )
            return int(frame.method.message_count) == 0

    try:
        wait_for(idle, timeout=timeout, interval=0.25, what="event pipeline idle")
    except WaitTimeout as exc:
        sys.stderr.write(f"warning: {exc}; going on\n")
    return time.monotonic() - started
