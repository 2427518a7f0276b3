"""What one POST /api/v1/orders costs in the orders process: SQL statements and CPU time.

    python -m bench.write_path [--posts 2000] [--profile 25] [--without-outbox]

In-process, through Flask's test client, against a throwaway PostgreSQL database made and
migrated the way the tests make theirs. No HTTP server, no gunicorn, no network client: what
is left is the service's own work per request (token check, parsing, validation, the use
case, rendering, logging) plus the driver's side of each round trip.

Both figures hold on a busy machine, where requests per second do not:
- statements per POST are counted (SQLAlchemy's `before_cursor_execute`), so they are exact;
- CPU is `time.process_time()` of this process, which does not count the time spent waiting
  for PostgreSQL or for a core another process holds. The server's own CPU is not in it.

`--without-outbox` adds a third measurement with the outbox row left out (the use case's
`record_event` replaced by nothing; the event is still built): the difference is what the
transactional outbox costs each write. Never what the service does, only a measurement.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import flask_migrate
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from services.orders import MIGRATIONS_DIR, create_app
from services.orders.models import db
from services.orders.tests.helpers import (
    CATALOGUE,
    TokenFactory,
    add_products,
    counting_statements,
    order_body,
)
from shared import tokens
from tests.support import create_database, drop_database, rsa_private_key

ORDERS = "/api/v1/orders"


@dataclass(frozen=True)
class Figures:
    """What a run of POSTs cost, per POST."""

    label: str
    posts: int
    statements: float
    cpu_ms: float
    statement_kinds: dict[str, float]
    begins: float
    checkouts: float
    python_calls: float


@contextmanager
def orders_app() -> Iterator[tuple[Flask, dict[str, str]]]:
    """The orders app on a fresh, migrated PostgreSQL database, and a user's headers."""
    url = create_database("bench_orders")
    os.environ.setdefault("APP_ENV", "test")  # local defaults for everything but the database
    try:
        # Not TESTING: the app logs as in production (one JSON access line per request),
        # into a sink, so formatting the line is counted and printing it is not.
        app = create_app({"SQLALCHEMY_DATABASE_URI": url})
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(open(os.devnull, "w"))  # noqa: SIM115  # lives as long as the run
        with app.app_context():
            flask_migrate.upgrade(directory=MIGRATIONS_DIR)
        factory = TokenFactory(
            rsa_private_key(), issuer=app.config["JWT_ISSUER"], audience=app.config["JWT_AUDIENCE"]
        )
        tokens.init_app(
            app,
            tokens.TokenVerifier(
                tokens.StaticKeySource(factory.jwks()),
                issuer=app.config["JWT_ISSUER"],
                audience=app.config["JWT_AUDIENCE"],
            ),
        )
        add_products(app, *CATALOGUE)
        try:
            yield app, factory.headers("user-bench")
        finally:
            with app.app_context():
                for engine in db.engines.values():
                    engine.dispose()
    finally:
        drop_database(url)


def post_order(client: FlaskClient, headers: dict[str, str], *, key: bool) -> None:
    """One POST of a two-line order (with a fresh Idempotency-Key if `key`); must be a 201."""
    if key:
        headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    response = client.post(ORDERS, json=order_body(), headers=headers)
    if response.status_code != 201:
        raise SystemExit(f"POST answered {response.status_code}: {response.get_data(as_text=True)}")


def measure(app: Flask, headers: dict[str, str], *, posts: int, key: bool, label: str) -> Figures:
    """Statements and CPU per POST over `posts` POSTs (after a warm-up)."""
    client = app.test_client()
    for _ in range(50):  # warm caches: compiled statements, pool, schema reflection
        post_order(client, headers, key=key)
    with counting_statements(app) as counts, counting_connections(app) as connections:
        started = time.process_time()
        for _ in range(posts):
            post_order(client, headers, key=key)
        cpu = time.process_time() - started
    # Python function calls per POST: deterministic, so comparable across runs on a busy
    # machine where CPU time is not quite.
    profiled = min(posts, 200)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(profiled):
        post_order(client, headers, key=key)
    profiler.disable()
    calls = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
    return Figures(
        label=label,
        posts=posts,
        statements=sum(counts.values()) / posts,
        cpu_ms=cpu * 1000 / posts,
        statement_kinds={kind: n / posts for kind, n in sorted(counts.items())},
        begins=connections["begin"] / posts,
        checkouts=connections["checkout"] / posts,
        python_calls=calls / profiled,
    )


@contextmanager
def counting_connections(app: Flask) -> Iterator[Counter[str]]:
    """Count transactions begun (psycopg sends BEGIN on its own) and pool checkouts (the
    write engine pings the server on each), round trips `counting_statements` does not see."""
    counts: Counter[str] = Counter()

    def begin(_conn: Any) -> None:
        counts["begin"] += 1

    def checkout(*_args: Any) -> None:
        counts["checkout"] += 1

    with app.app_context():
        engine = db.engine  # the write engine: the POST's only one
    sa.event.listen(engine, "begin", begin)
    sa.event.listen(engine.pool, "checkout", checkout)
    try:
        yield counts
    finally:
        sa.event.remove(engine, "begin", begin)
        sa.event.remove(engine.pool, "checkout", checkout)


def profile(app: Flask, headers: dict[str, str], *, posts: int, top: int) -> str:
    """cProfile of `posts` POSTs (with a key), the `top` functions by own time."""
    client = app.test_client()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(posts):
        post_order(client, headers, key=True)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Print statements and CPU per POST, without and with an Idempotency-Key."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000, help="POSTs per measurement")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also print cProfile's top N"
    )
    parser.add_argument(
        "--without-outbox",
        action="store_true",
        help="also measure POSTs whose outbox row is left out (what the row costs)",
    )
    args = parser.parse_args(argv)
    with orders_app() as (app, headers):
        runs = [
            measure(app, headers, posts=args.posts, key=False, label="POST"),
            measure(app, headers, posts=args.posts, key=True, label="POST + Idempotency-Key"),
        ]
        if args.without_outbox:
            from services.orders import services as orders_services

            with mock.patch.object(orders_services, "record_event", lambda *_a, **_k: None):
                runs.append(
                    measure(app, headers, posts=args.posts, key=False, label="POST, no outbox row")
                )
        for figures in runs:
            kinds = ", ".join(f"{kind} {n:g}" for kind, n in figures.statement_kinds.items())
            sys.stdout.write(
                f"{figures.label:<24} {figures.posts} posts: "
                f"{figures.statements:g} statements/POST ({kinds}) "
                f"+ BEGIN {figures.begins:g} + pool checkout/ping {figures.checkouts:g}, "
                f"{figures.cpu_ms:.2f} ms CPU/POST, {figures.python_calls:.0f} Python calls/POST\n"
            )
        if args.profile:
            sys.stdout.write(profile(app, headers, posts=min(args.posts, 500), top=args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
