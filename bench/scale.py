"""`make bench-scale`: what the suite's requests and event paths cost as its data grows.

    python -m bench.scale [--sizes 10000,100000,1000000] [--rounds 3] [--seconds 10]

Starts the whole suite (bench/suite.py, fresh databases), then for each size in turn grows
the same databases to that many orders with bench/scale_seed.py (COPY, a year of data in
realistic shapes), VACUUM (ANALYZE)s them as autovacuum would have, records every table's
and index's size, runs the purge jobs once over the hour of rows seeded past their retention
and the year of deliveries and notifications (bench/scale_purge.py) and records the sizes
again. Then it measures, directly at each
service under wrk (16 connections, `--seconds` per run, `--rounds` rounds with the cells
interleaved within each round): GET one order, a page of 20, a heavy user's first and 50th
page, a page filtered by status, a page of notifications, POST an order and login; then
the outbox relay's rate over the retained outbox and the notifications consumer's rate
over the grown tables, once per round. Writes bench/results/scale-<date>.json, the chart
next to it and the results section of docs/scale.md (bench/scale_report.py).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import events as ev
from bench import report, scale_report, scale_seed, scale_shapes, seeding
from bench.cpu import CpuMeter
from bench.suite import Suite, SuiteOptions
from bench.wrk import WrkResult, run_wrk, write_rows
from tests.support import wait_for

# key: (title, service it is measured on, wrk mode).
REQUESTS: dict[str, tuple[str, str, str]] = {
    "get_one": ("GET one order", "orders", "get_one"),
    "page": ("GET a page of 20 orders", "orders", "page"),
    "heavy_first": ("GET a heavy user's first page", "orders", "get"),
    "heavy_50": ("GET a heavy user's 50th page", "orders", "get"),
    "filtered": ("GET a heavy user's page of shipped orders", "orders", "get"),
    "notifications": ("GET a page of 20 notifications", "notifications", "get"),
    "post": ("POST an order", "orders", "post"),
    "login": ("POST login (argon2id)", "auth", "login"),
}
SAMPLED_USERS = 16
RELAY_EVENTS = 10_000
CONSUMER_EVENTS = 3_000


class Scale:
    """One run: the suite, its data files, the results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = datetime.now(UTC)
        self.suite = Suite(
            SuiteOptions(
                workers=2,
                threads=4,
                # A shared machine under others' tests boots the suite slowly.
                start_timeout=300.0,
                extra_env={
                    "AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200",
                    "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
                    "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
                },
            )
        )
        self.meter = CpuMeter(lambda: {n: [p] for n, p in self.suite.pids().items()})
        self.work = Path(self.suite.dir) / "scale-data"
        self.results: dict[str, Any] = {"sizes": {}}

    def log(self, message: str) -> None:
        """Progress on stderr, with the elapsed time."""
        elapsed = (datetime.now(UTC) - self.started).total_seconds()
        sys.stderr.write(f"[scale {elapsed:7.1f}s] {message}\n")
        sys.stderr.flush()

    def db(self, service: str) -> str:
        """The libpq URL of a service's database."""
        return ev.libpq_url(self.suite.database_urls[service])

    # -- one size --------------------------------------------------------------------------

    def grow(self, start: int, orders: int) -> dict[str, Any]:
        """Seed up to `orders`, vacuum, purge; the sizes and timings of each step."""
        self.log(f"seeding orders {start:,}..{orders:,}")
        began = time.monotonic()
        counts = scale_seed.seed(
            self.suite.database_urls, orders=orders, start=start, log=self.log
        ).rows
        seed_seconds = time.monotonic() - began
        began = time.monotonic()
        for service in ("auth", "orders", "notifications"):
            with psycopg.connect(self.db(service), autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE)")
        vacuum_seconds = time.monotonic() - began
        seeded = {s: table_sizes(self.db(s)) for s in ("auth", "orders", "notifications")}
        self.log("running the purge jobs")
        purge = subprocess.run(
            [sys.executable, "-m", "bench.scale_purge"],
            env=self.suite.env,
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parents[1],
        )
        if purge.returncode != 0:
            raise RuntimeError(f"purge failed:\n{purge.stderr[-3000:]}")
        purged = {s: table_sizes(self.db(s)) for s in ("auth", "orders", "notifications")}
        return {
            "rows_added": counts,
            "seed_seconds": round(seed_seconds, 1),
            "vacuum_seconds": round(vacuum_seconds, 1),
            "purge": json.loads(purge.stdout.strip().splitlines()[-1]),
            "tables_seeded": seeded,
            "tables_purged": purged,
        }

    def data_files(self, orders: int) -> dict[str, Path]:
        """Log in sampled owners of random orders and the heavy users; wrk's data files."""
        directory = self.work / str(orders)
        directory.mkdir(parents=True, exist_ok=True)
        with psycopg.connect(self.db("orders"), autocommit=True) as conn:
            heavy_ids = [scale_shapes.user_id(i) for i in range(scale_shapes.HEAVY_USERS)]
            # Owners of orders drawn at random from the whole table (heavy users included
            # as often as their share), then a random order of each of them.
            sampled = [
                str(r[0])
                for r in conn.execute(
                    "SELECT DISTINCT user_id FROM (SELECT user_id FROM orders"
                    " ORDER BY random() LIMIT %s) s",
                    (SAMPLED_USERS,),
                )
            ]
        users = scale_shapes.users_for(orders)
        emails = {scale_shapes.user_id(i): scale_shapes.user_email(i) for i in range(users)}
        tokens = {uid: self.login(emails[uid]) for uid in {*sampled, *heavy_ids}}
        with psycopg.connect(self.db("orders"), autocommit=True) as conn:
            pairs = [
                (tokens[uid], str(r[0]))
                for uid in sampled
                for r in conn.execute(
                    "SELECT id FROM orders WHERE user_id = %s ORDER BY random() LIMIT 8", (uid,)
                )
            ]
        random.Random(1).shuffle(pairs)
        heavy = [tokens[uid] for uid in heavy_ids]
        normal = [tokens[uid] for uid in sampled if uid not in heavy_ids] or heavy
        page_50 = [(t, self.nth_page(t, 50)) for t in heavy]
        logins = [
            (scale_shapes.user_email(i), scale_shapes.SEED_PASSWORD)
            for i in random.Random(orders).sample(range(users), min(users, 200))
        ]
        return {
            "get_one": write_rows(pairs, directory, "get_one"),
            "page": write_rows([(t,) for t in normal], directory, "page"),
            "heavy_first": write_rows(
                [(t, "/api/v1/orders?limit=20") for t in heavy], directory, "heavy_first"
            ),
            "heavy_50": write_rows(page_50, directory, "heavy_50"),
            "filtered": write_rows(
                [(t, "/api/v1/orders?status=shipped&limit=20") for t in heavy],
                directory,
                "filtered",
            ),
            "notifications": write_rows(
                [(t, "/api/v1/notifications?limit=20") for t in [*normal, *heavy]],
                directory,
                "notifications",
            ),
            "post": write_rows([(t,) for t in normal], directory, "post"),
            "login": write_rows(logins, directory, "login"),
        }

    def login(self, email: str) -> str:
        """An access token of a seeded user (password login at auth, as a client does)."""
        answer = seeding.http_session().post(
            self.suite.url("auth", "/api/v1/auth/login"),
            json={"email": email, "password": scale_shapes.SEED_PASSWORD},
            timeout=30,
        )
        if answer.status_code != 200:
            raise RuntimeError(f"login of {email} answered {answer.status_code}: {answer.text}")
        return str(answer.json()["access_token"])

    def nth_page(self, token: str, n: int) -> str:
        """The path of a user's n-th page of 20 orders (following next_cursor)."""
        path = "/api/v1/orders?limit=20"
        http = seeding.http_session()
        for _ in range(n - 1):
            body = http.get(
                self.suite.url("orders", path),
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ).json()
            if not body.get("next_cursor"):
                break  # a small seed: the heavy user's last page instead
            path = f"/api/v1/orders?limit=20&cursor={body['next_cursor']}"
        return path

    def measure(self, orders: int, files: dict[str, Path]) -> dict[str, Any]:
        """Every request `rounds` times (interleaved), then relay and consumer per round."""
        cells: dict[str, list[dict[str, Any]]] = {key: [] for key in REQUESTS}
        relay: list[float] = []
        consumer: list[float] = []
        loads: list[str] = [_load()]
        for key, (_, service, mode) in REQUESTS.items():
            if key not in ("post", "login"):  # warm-up: pools, JWKS, the caches
                run_wrk(self.suite.url(service), mode, files[key], seconds=2, connections=16)
        for round_no in range(self.args.rounds):
            self.log(f"{orders:,} orders: round {round_no + 1}/{self.args.rounds}")
            for key, (_, service, mode) in REQUESTS.items():
                self.suite.check_alive()
                cells[key].append(
                    self.timed(
                        functools.partial(
                            run_wrk,
                            self.suite.url(service),
                            mode,
                            files[key],
                            seconds=self.args.seconds,
                            connections=16,
                        ),
                        service,
                    )
                )
            seeding.settle(self.suite)
            relay.append(self.relay_rate(RELAY_EVENTS))
            seeding.settle(self.suite)
            run = ev.consumer_throughput(
                amqp_urls=self.suite.service_amqp_urls,
                amqp_url=self.suite.amqp_url,
                notifications_db=self.suite.database_urls["notifications"],
                events=CONSUMER_EVENTS,
                runs=1,
            )[0]
            consumer.append(run.rate)
            seeding.settle(self.suite)
            loads.append(_load())
        return {
            "requests": {
                key: {"runs": runs, "summary": report.http_cell(runs)}
                for key, runs in cells.items()
            },
            "relay": {"events": RELAY_EVENTS, "rates": relay, "summary": report.summarize(relay)},
            "consumer": {
                "events": CONSUMER_EVENTS,
                "rates": consumer,
                "summary": report.summarize(consumer),
            },
            "load_average": loads,
        }

    def timed(self, action: Callable[[], WrkResult], service: str) -> dict[str, Any]:
        """A wrk run and the CPU milliseconds per request of the service measured."""
        start = self.meter.snapshot()
        result = action()
        phase = self.meter.between(service, start, self.meter.snapshot(), {})
        cpu_seconds = phase.shares.get(service, 0.0) * phase.seconds
        return {
            **result.to_dict(),
            "service_cpu_ms_per_request": round(1000 * cpu_seconds / max(1, result.requests), 3),
            "postgres_cpu_ms_per_request": round(
                1000 * phase.shares.get("postgres", 0.0) * phase.seconds / max(1, result.requests),
                3,
            ),
        }

    def relay_rate(self, count: int) -> float:
        """`count` order.created rows committed to the (retained) outbox: the relay's rate."""
        # A contact with an unverified address: the consumer writes the events' notifications
        # but no emails, so the next measurement does not wait for 10,000 mails.
        user = "scale-relay-user"
        with psycopg.connect(self.db("notifications"), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO contacts (user_id, email, name, active, email_verified, created_at,"
                " updated_at, active_version, profile_version) VALUES (%s, %s, 'Relay', true,"
                " false, now(), now(), 1, 1) ON CONFLICT DO NOTHING",
                (user, f"{user}@scale.example.com"),
            )
        now = datetime.now(UTC)
        with psycopg.connect(self.db("orders")) as conn:
            with (
                conn.cursor() as cursor,
                cursor.copy(
                    "COPY outbox (event_id, type, payload, created_at, available_at, attempts)"
                    " FROM STDIN"
                ) as copy,
            ):
                for _ in range(count):
                    event = ev.order_created_event(user)
                    copy.write_row((event.id, event.type, event.to_json().decode(), now, now, 0))
            conn.commit()
            started = time.monotonic()

            def drained() -> bool:
                row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
                conn.commit()
                return row is not None and row[0] == 0

            wait_for(drained, timeout=600, interval=0.05, what="the relay draining the outbox")
        return count / (time.monotonic() - started)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Path:
        """Every size in turn; the results file."""
        self.suite.start()
        self.results["meta"] = {
            "started": self.started.strftime("%Y-%m-%d %H:%M UTC"),
            "command": self.args.label,
            "cpus": os.cpu_count(),
            "rounds": self.args.rounds,
            "seconds": self.args.seconds,
            "sizes": self.args.sizes,
            "wrk": f"-t1 -c16 -d{self.args.seconds}s, bench/lua/api.lua, directly at each service",
            "gunicorn": "-w 2 -k BalancedThreadWorker --threads 4 (as make bench)",
            "nice": os.nice(0),
        }
        previous = 0
        for orders in self.args.sizes:
            load = _load()
            grown = self.grow(previous, orders)
            self.log(f"{orders:,} orders: seeded in {grown['seed_seconds']} s")
            files = self.data_files(orders)
            seeding.settle(self.suite)
            measured = self.measure(orders, files)
            self.results["sizes"][str(orders)] = {"load_before": load, **grown, **measured}
            previous = orders
            self.save()
        return self.save()

    def save(self) -> Path:
        """Write the JSON, the chart and the Markdown section (again after every size)."""
        return scale_report.finish(self.results, self.started)


def table_sizes(db_url: str) -> list[dict[str, Any]]:
    """Every table of a database with its rows (estimate after ANALYZE) and sizes in bytes."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY c.relname"
        ).fetchall()
        indexes = conn.execute(
            "SELECT t.relname, i.relname, pg_relation_size(i.oid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'"
        ).fetchall()
    by_table: dict[str, dict[str, int]] = {}
    for table, index, size in indexes:
        by_table.setdefault(table, {})[index] = int(size)
    return [
        {
            "table": name,
            "rows": max(0, int(count)),
            "table_bytes": int(table_bytes),
            "index_bytes": int(index_bytes),
            "indexes": by_table.get(name, {}),
        }
        for name, count, table_bytes, index_bytes in rows
    ]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="orders, ascending")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measurement")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--label", default="make bench-scale", help="the command, for the record")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    if args.sizes != sorted(args.sizes) or not args.sizes:
        raise SystemExit("--sizes must be ascending")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run and write the results."""
    args = parse_args(argv)
    # SIGTERM stops the suite and drops its databases, as an interrupt does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scale = Scale(args)
    try:
        path = scale.run()
    finally:
        scale.suite.stop()
    scale.log(f"done: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
