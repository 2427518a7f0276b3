"""`make bench` / `make bench-quick`: the suite under gunicorn on this machine, driven by wrk.

    python -m bench.run [--quick] [--runs N] [--seconds S] [--connections C]

Starts the whole suite (fresh databases, a fresh vhost, a temporary signing key), a bare
Flask + psycopg baseline under the same gunicorn settings and the nginx edge; seeds users,
tokens and orders; then measures HTTP paths, logins, the outbox relay, the consumer,
end-to-end latency at fixed rates and the backlog drain after a broker outage (on a second
RabbitMQ node of its own). Writes bench/results/<date>.json, a chart next to it and the
results section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import psutil
import psycopg
import requests

from bench import events as ev
from bench import profile, report
from bench.cpu import CpuMeter, PhaseCpu
from bench.edge import Edge, EdgeUnavailable
from bench.suite import Suite, SuiteOptions, gunicorn_argv, queue_exists
from bench.wrk import WrkError, WrkResult, run_wrk, write_rows, wrk_path
from shared.gunicorn_worker import WORKER_CLASS
from shared.messaging import queue_name
from tests import support
from tests.support import WaitTimeout, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MARKDOWN = ROOT / "BENCHMARKS.md"
BASELINE_ROWS = 10_000

# (endpoint, path) in the order they run within one round; rounds repeat `runs` times, so
# drift over time (a warming cache, a neighbour's load) spreads over every cell alike.
# POSTs come last: the events they cause are processed before the next round starts.
CELLS: list[tuple[str, str]] = [
    ("baseline", "direct"),
    ("get_one", "direct"),
    ("get_one", "gateway"),
    ("get_one", "edge"),
    ("page", "direct"),
    ("page", "gateway"),
    ("page", "edge"),
    ("login", "direct"),
    ("login", "gateway"),
    ("post", "direct"),
    ("post", "gateway"),
    ("post", "edge"),
]


@dataclass(frozen=True)
class Plan:
    """How much of everything to do."""

    mode: str
    runs: int
    seconds: float
    connections: int
    users: int
    orders_per_user: int
    relay_events: int
    consumer_events: int
    e2e_seconds: float
    outage_events: int
    profile_seconds: int


PLANS = {
    "full": Plan("full", 3, 10, 16, 8, 40, 20_000, 3_000, 20, 10_000, 8),
    "quick": Plan("quick", 3, 1, 16, 4, 21, 2_000, 300, 1, 0, 0),
}


@dataclass
class User:
    """A seeded account and its access token."""

    id: str
    email: str
    password: str
    token: str


# -- seeding -------------------------------------------------------------------------------


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def register_users(suite: Suite, count: int, label: str = "bench") -> list[User]:
    """Register, verify (with the mailed link) and log in `count` users directly at auth.

    Argon2 as in production; verified, so their notifications are mailed as in production.
    """

    def one(n: int) -> User:
        http = _session()
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
        response = _session().post(
            url, json=ev.ORDER_BODY, headers={"Authorization": f"Bearer {user.token}"}, timeout=30
        )
        if response.status_code != 201:
            raise RuntimeError(f"seeding an order answered {response.status_code}: {response.text}")
        return user.token, str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=8) as executor:
        return list(executor.map(one, jobs))


def start_baseline(suite: Suite, db_url: str) -> str:
    """Fill the baseline's table and start it under the same gunicorn settings; its URL."""
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
    wait_for(lambda: _ok(f"{url}/items/1"), timeout=30, what="baseline answering")
    return url


def _ok(url: str, headers: Mapping[str, str] | None = None) -> bool:
    try:
        return _session().get(url, headers=headers, timeout=2).status_code == 200
    except requests.RequestException:
        return False


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


# -- the run -------------------------------------------------------------------------------


class Bench:
    """One benchmark run: owns the suite, the baseline, the edge and the results."""

    def __init__(self, plan: Plan, args: argparse.Namespace) -> None:
        self.plan = plan
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="bench-"))
        self.suite = Suite(
            SuiteOptions(
                workers=args.workers,
                threads=args.threads,
                base_dir=self.work / "suite",
                extra_env={
                    # Tokens must outlive the run (15 minutes by default).
                    "AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200",
                    # The limits are measured (each request still counts in Redis) but must
                    # not refuse the benchmark's own load.
                    "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
                    "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
                },
            )
        )
        self.edge: Edge | None = None
        self.edge_reason = ""
        self.baseline_db: str | None = None
        self.bases: dict[str, str] = {}
        self.data: dict[str, Path] = {}
        self.users: list[User] = []
        self.meter = CpuMeter(self._roots)
        self.extra_roots: dict[str, list[int]] = {}
        self.cpu: dict[str, list[PhaseCpu]] = {}
        self.started = datetime.now(UTC)
        self.results: dict[str, Any] = {"http": {}, "events": {}, "profiles": {}}

    def settle(self) -> None:
        """Let the event pipeline finish what earlier measurements started."""
        settle(self.suite, deliveries=self.plan.mode == "full")

    def _roots(self) -> dict[str, list[int]]:
        roots = {name: [pid] for name, pid in self.suite.pids().items()}
        if self.edge is not None and self.edge.process is not None:
            roots["nginx"] = [self.edge.process.pid]
        for name, pids in self.extra_roots.items():
            roots[name] = pids
        return roots

    def log(self, message: str) -> None:
        """Progress on stderr, with the elapsed time."""
        elapsed = (datetime.now(UTC) - self.started).total_seconds()
        sys.stderr.write(f"[bench {elapsed:6.1f}s] {message}\n")
        sys.stderr.flush()

    # -- set-up ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Start everything and seed the data."""
        self.log("starting the suite (fresh databases and vhost)")
        self.suite.start()
        self.baseline_db = support.create_database("bench_baseline")
        self.bases = {
            "baseline": start_baseline(self.suite, self.baseline_db),
            "orders": self.suite.url("orders"),
            "auth": self.suite.url("auth"),
            "gateway": self.suite.url("gateway"),
        }
        try:
            self.edge = Edge(
                self.work / "nginx",
                port=free_port(),
                gateway=f"127.0.0.1:{self.suite.ports['gateway']}",
                orders=f"127.0.0.1:{self.suite.ports['orders']}",
                notifications=f"127.0.0.1:{self.suite.ports['notifications']}",
                gateway_env=self.suite.env,
            )
            self.edge.start()
            self.bases["edge"] = self.edge.url
        except EdgeUnavailable as exc:
            self.edge = None
            self.edge_reason = str(exc)
            self.log(f"nginx edge not run: {exc}")
        self.log(f"seeding {self.plan.users} users and {self.plan.orders_per_user} orders each")
        self.users = register_users(self.suite, self.plan.users)
        pairs = seed_orders(self.suite, self.users, self.plan.orders_per_user)
        data_dir = self.work / "data"
        data_dir.mkdir()
        ids = list(range(1, BASELINE_ROWS + 1))
        # A fixed stride visits every row, scattered, the same way in every run.
        ids = [ids[(k * 7919) % len(ids)] for k in range(len(ids))]
        self.data = {
            "get_one": write_rows(pairs, data_dir, "get_one"),
            "page": write_rows([(u.token,) for u in self.users], data_dir, "page"),
            "post": write_rows([(u.token,) for u in self.users], data_dir, "post"),
            "login": write_rows([(u.email, u.password) for u in self.users], data_dir, "login"),
            "baseline": write_rows([(str(i),) for i in ids], data_dir, "baseline"),
        }
        self.warm_up(pairs)
        self.settle()

    def warm_up(self, pairs: Sequence[tuple[str, str]]) -> None:
        """A few requests per path so every worker has its JWKS, pools and caches."""
        token, order_id = pairs[0]
        headers = {"Authorization": f"Bearer {token}"}
        for base in ("orders", "gateway", "edge"):
            if base not in self.bases:
                continue
            for _ in range(40):
                _ok(f"{self.bases[base]}/api/v1/orders/{order_id}", headers)
                _ok(f"{self.bases[base]}/api/v1/orders?limit=20", headers)
        for _ in range(40):
            _ok(f"{self.bases['baseline']}/items/1")
        if self.plan.mode == "full":
            for endpoint, path in CELLS:
                if endpoint not in ("login", "post") and self._base(endpoint, path):
                    self._wrk(endpoint, path, seconds=2)

    def _base(self, endpoint: str, path: str) -> str | None:
        if path == "direct":
            return self.bases[{"baseline": "baseline", "login": "auth"}.get(endpoint, "orders")]
        return self.bases.get(path)

    def _wrk(self, endpoint: str, path: str, *, seconds: float) -> WrkResult:
        base = self._base(endpoint, path)
        assert base is not None
        mode = "item" if endpoint == "baseline" else endpoint
        return run_wrk(
            base,
            mode,
            self.data[endpoint],
            seconds=seconds,
            connections=self.plan.connections,
        )

    # -- phases ----------------------------------------------------------------------------

    def measure(
        self, name: str, action: Callable[[], Any], extra: dict[str, float] | None = None
    ) -> Any:
        """Run action() as a CPU phase named `name` (repeated names are averaged)."""
        start = self.meter.snapshot()
        value = action()
        added = dict(extra or {})
        if isinstance(value, WrkResult):
            added["wrk"] = value.generator_cpu_seconds
        self.cpu.setdefault(name, []).append(
            self.meter.between(name, start, self.meter.snapshot(), added)
        )
        return value

    def http(self) -> None:
        """Every (endpoint, path) cell, `runs` rounds, interleaved."""
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for round_no in range(self.plan.runs):
            self.log(f"HTTP round {round_no + 1}/{self.plan.runs}")
            for endpoint, path in CELLS:
                if self._base(endpoint, path) is None:
                    continue
                self.suite.check_alive()
                result = self.measure(
                    f"{report.ENDPOINTS[endpoint]} — {report.PATHS[path]}",
                    functools.partial(self._wrk, endpoint, path, seconds=self.plan.seconds),
                )
                runs.setdefault((endpoint, path), []).append(result.to_dict())
            self.settle()
        for (endpoint, path), items in runs.items():
            self.results["http"].setdefault(endpoint, {})[path] = {
                "runs": items,
                "summary": report.http_cell(items),
            }
        if self.edge is None:
            for endpoint in ("get_one", "page", "post"):
                self.results["http"][endpoint]["edge"] = {"not_run": self.edge_reason}

    def relay(self) -> None:
        """Outbox relay throughput."""
        self.log(f"outbox relay: {self.plan.relay_events:,} rows x {self.plan.runs}")
        runs = self.measure(
            "outbox relay (runs in the driver)",
            lambda: ev.relay_throughput(events=self.plan.relay_events, runs=self.plan.runs),
        )
        short = [r for r in runs if r.queued != r.events]
        if short:
            raise RuntimeError(f"relay: queue got {short[0].queued} of {short[0].events} events")
        self.results["events"]["relay"] = {
            "events": self.plan.relay_events,
            "batch_size": 500,
            "runs_count": len(runs),
            "runs": [{"seconds": r.seconds, "rate": r.rate} for r in runs],
            "summary": report.summarize([r.rate for r in runs]),
        }

    def consumer(self) -> None:
        """Notifications consumer throughput."""
        self.log(f"consumer: {self.plan.consumer_events:,} events x {self.plan.runs}")
        self.settle()
        runs = self.measure(
            "notifications consumer",
            lambda: ev.consumer_throughput(
                amqp_url=self.suite.amqp_url,
                notifications_db=self.suite.database_urls["notifications"],
                events=self.plan.consumer_events,
                runs=self.plan.runs,
            ),
        )
        self.results["events"]["consumer"] = {
            "events": self.plan.consumer_events,
            "runs": [
                {"seconds": r.seconds, "publish_seconds": r.publish_seconds, "rate": r.rate}
                for r in runs
            ],
            "summary": report.summarize([r.rate for r in runs]),
        }

    def e2e(self) -> None:
        """End-to-end latency at fixed rates, open loop, through the gateway."""
        out: dict[str, Any] = {}
        for rate in (50, 200):
            runs = []
            for round_no in range(self.plan.runs):
                self.settle()
                self.log(f"end-to-end at {rate}/s, run {round_no + 1}/{self.plan.runs}")
                run = self.measure(
                    f"end-to-end at {rate} orders/s",
                    functools.partial(
                        ev.e2e_latency,
                        post_url=self.suite.url("gateway", "/api/v1/orders"),
                        tokens=[u.token for u in self.users],
                        orders_db=self.suite.database_urls["orders"],
                        notifications_db=self.suite.database_urls["notifications"],
                        rate=rate,
                        seconds=self.plan.e2e_seconds,
                    ),
                )
                runs.append(
                    {
                        "orders": run.orders,
                        "errors": run.errors,
                        "missing": run.missing,
                        "p50_ms": ev.percentile(run.latencies_ms, 50),
                        "p90_ms": ev.percentile(run.latencies_ms, 90),
                        "p99_ms": ev.percentile(run.latencies_ms, 99),
                        "max_ms": max(run.latencies_ms, default=float("nan")),
                        "from_send_p50_ms": ev.percentile(run.from_send_ms, 50),
                        "from_send_p99_ms": ev.percentile(run.from_send_ms, 99),
                        "max_lateness_ms": run.max_lateness_ms,
                    }
                )
            out[str(rate)] = {
                "orders": runs[0]["orders"],
                "runs": runs,
                "summary": {
                    key: report.summarize([r[key] for r in runs])
                    for key in (
                        "from_send_p50_ms",
                        "from_send_p99_ms",
                        "p50_ms",
                        "p90_ms",
                        "p99_ms",
                        "max_ms",
                        "max_lateness_ms",
                    )
                },
            }
        self.results["events"]["e2e"] = out

    def outage(self) -> None:
        """Backlog drain after an outage of a second RabbitMQ node the bench starts itself."""
        server = os.path.join(support.RABBITMQ_SBIN, "rabbitmq-server")
        reason = ""
        if self.args.no_outage:
            reason = "disabled (--no-outage)"
        elif self.plan.outage_events == 0:
            reason = "skipped in quick mode (booting a second broker node alone takes ~10 s)"
        elif not os.path.exists(server):
            reason = f"no {server}"
        if reason:
            self.results["events"]["outage"] = {"not_run": reason}
            return
        count = self.plan.outage_events
        self.log(f"outage: second RabbitMQ node, {count:,} orders while it is down")
        self.settle()
        node_dir = self.work / "rabbit-node"
        node_dir.mkdir()
        node = support.RabbitNode(str(node_dir))
        user = register_users(self.suite, 1, label="outage")[0]
        node.start()
        names = ["outage.orders.relay", "outage.notifications.consume"]
        try:
            if node._process is not None:
                self.extra_roots["rabbitmq (bench node)"] = [node._process.pid]
            # The suite's own relay and consumer step aside; these two use the second node.
            self.suite.stop_processes(["orders.relay", "notifications.consume"])
            env = {"AMQP_URL": node.url}
            self.suite.spawn(
                names[0],
                [sys.executable, "-m", "services.orders.worker", "relay"],
                {**env, "SERVICE_NAME": "orders"},
            )
            self.suite.spawn(
                names[1],
                [sys.executable, "-m", "services.notifications.worker", "consume"],
                {**env, "SERVICE_NAME": "notifications"},
            )
            wait_for(
                lambda: queue_exists(node.url, queue_name("notifications")),
                timeout=60,
                what="notifications queue on the second node",
            )
            runs = [self._outage_run(node, user) for _ in range(self.plan.runs)]
            self.results["events"]["outage"] = {
                "events": count,
                "runs": [
                    {
                        "events": run.events,
                        "post_errors": run.post_errors,
                        "outage_seconds": run.outage_seconds,
                        "first_after_seconds": run.first_after_seconds,
                        "drain_seconds": run.drain_seconds,
                        "rate": run.rate,
                    }
                    for run in runs
                ],
                "post_errors": sum(run.post_errors for run in runs),
                "summary": {
                    key: report.summarize([getattr(run, key) for run in runs])
                    for key in ("outage_seconds", "first_after_seconds", "drain_seconds", "rate")
                },
            }
        finally:
            self.suite.stop_processes(names)
            self.extra_roots.pop("rabbitmq (bench node)", None)
            node.stop()
            shutil.rmtree(node_dir, ignore_errors=True)

    def _outage_run(self, node: support.RabbitNode, user: User) -> ev.DrainRun:
        """Stop the node's broker, place orders, start it again, time the drain."""
        self.settle()
        count = self.plan.outage_events
        start = self.meter.snapshot()
        node.stop_app()
        down = time.time()
        errors = ev.post_orders(self.suite.url("orders", "/api/v1/orders"), [user.token], count)
        node.start_app()
        up = time.time()

        def drained() -> tuple[float, float] | None:
            # Only this run's notifications: the ones created since the broker went down.
            seen, first, last = ev.count_since(
                self.suite.database_urls["notifications"], user.id, after=down
            )
            if seen < count - errors or first is None or last is None:
                return None
            return first, last

        first, last = wait_for(drained, timeout=900, interval=0.2, what="outage backlog drained")
        self.cpu.setdefault("backlog after an outage", []).append(
            self.meter.between("backlog after an outage", start, self.meter.snapshot(), {})
        )
        return ev.DrainRun(
            events=count - errors,
            post_errors=errors,
            outage_seconds=up - down,
            first_after_seconds=first - up,
            drain_seconds=last - up,
        )

    def profiles(self) -> None:
        """py-spy on the processes that bound the measured paths, under the same load."""
        seconds = self.plan.profile_seconds
        targets = [
            ("orders: GET one order, direct", "orders", "get_one", "direct"),
            ("gateway: GET one order, through the gateway", "gateway", "get_one", "gateway"),
            ("orders: POST an order, direct", "orders", "post", "direct"),
        ]
        self._profile_consumer(seconds)
        for title, process, endpoint, path in targets:
            pid = self.suite.pids().get(process)
            if pid is None or profile.py_spy() is None:
                self.results["profiles"][title] = {"not_run": "py-spy or the process is missing"}
                continue
            self.log(f"profiling {title}")
            raw = self.work / f"profile-{process}-{endpoint}.txt"
            recorder = profile.start_recording(pid, raw, seconds=seconds)
            time.sleep(0.5)  # py-spy attaches first
            self._wrk(endpoint, path, seconds=seconds)
            _, stderr = recorder.communicate(timeout=seconds + 60)
            if recorder.returncode != 0 or not raw.exists():
                self.results["profiles"][title] = {"not_run": stderr.decode()[-300:]}
                continue
            self.results["profiles"][title] = profile.summarize(raw)
        self.settle()

    def _profile_consumer(self, seconds: int) -> None:
        title = "notifications consumer: order.created events"
        pid = self.suite.pids().get("notifications.consume")
        if pid is None or profile.py_spy() is None:
            self.results["profiles"][title] = {"not_run": "py-spy or the process is missing"}
            return
        self.log(f"profiling {title}")
        publisher = ev.Publisher(self.suite.amqp_url)
        try:
            # More than it can handle in the recording: it stays busy throughout.
            user_id = f"bench-profile-{uuid.uuid4().hex[:8]}"
            publisher.publish(ev.user_registered_event(user_id))
            publisher.publish(ev.user_email_verified_event(user_id))
            batch = [ev.order_created_event(user_id) for _ in range(seconds * 250)]
            raw = self.work / "profile-consumer.txt"
            recorder = profile.start_recording(pid, raw, seconds=seconds)
            time.sleep(0.5)
            publisher.publish_batch(batch)
            _, stderr = recorder.communicate(timeout=seconds + 60)
        finally:
            publisher.close()
        if recorder.returncode != 0 or not raw.exists():
            self.results["profiles"][title] = {"not_run": stderr.decode()[-300:]}
        else:
            self.results["profiles"][title] = profile.summarize(raw)
        self.settle()

    # -- results ---------------------------------------------------------------------------

    def finish(self) -> tuple[Path, Path]:
        """Write the JSON, the chart and BENCHMARKS.md; their paths."""
        stamp = self.started.strftime("%Y-%m-%dT%H%M%SZ")
        suffix = "" if self.plan.mode == "full" else f"-{self.plan.mode}"
        RESULTS.mkdir(parents=True, exist_ok=True)
        json_path = RESULTS / f"{stamp}{suffix}.json"
        chart_path = RESULTS / f"{stamp}{suffix}.png"
        self.results["cpu"] = {name: _average(phases) for name, phases in self.cpu.items()}
        self.results["meta"] = {
            **self.results.get("meta", {}),
            "json": str(json_path.relative_to(ROOT)),
            "chart": str(chart_path.relative_to(ROOT)),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.results["targets"] = report.targets(self.results)
        report.write_json(json_path, self.results)
        report.chart(chart_path, self.results)
        report.update_markdown(MARKDOWN, self.results)
        return json_path, chart_path

    def describe(self) -> None:
        """The machine, the settings and the versions, for the record."""
        plan = self.plan
        self.results["meta"] = {
            "started": self.started.strftime("%Y-%m-%d %H:%M UTC"),
            "mode": plan.mode,
            "command": self.args.label,
            "runs": plan.runs,
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "platform": platform.platform(),
        }
        self.results["settings"] = {
            "gunicorn": (
                f"`-c python:shared.gunicorn_conf -w {self.args.workers} -k {WORKER_CLASS} "
                f"--threads {self.args.threads}` (keep-alive 75 s, JSON access line per request "
                "from the app at INFO)"
            ),
            "wrk": (
                f"`-t1 -c{plan.connections} -d{max(1, round(plan.seconds))}s`, Lua script "
                "bench/lua/api.lua (closed loop: latency includes queueing at saturation)"
            ),
            "nginx": "1 worker, the gateway's template rendered as is (access log buffered)",
            "argon2": _argon2_params(),
            "versions": _versions(self.suite),
            "plan": plan.__dict__,
        }

    def close(self) -> None:
        """Stop everything this run started and drop what it created."""
        if self.edge is not None:
            self.edge.stop()
        self.suite.stop()
        if self.baseline_db:
            support.drop_database(self.baseline_db)
        shutil.rmtree(self.work, ignore_errors=True)


def _average(phases: Sequence[PhaseCpu]) -> dict[str, Any]:
    seconds = sum(p.seconds for p in phases)
    labels = {label for p in phases for label in p.shares}
    return {
        "seconds": round(seconds, 2),
        "shares": {
            label: round(sum(p.shares.get(label, 0.0) * p.seconds for p in phases) / seconds, 3)
            for label in sorted(labels)
        },
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _argon2_params() -> str:
    from services.auth.config import OWASP_MIN_MEMORY_KIB, OWASP_MIN_TIME_COST

    return (
        f"production defaults, memory {OWASP_MIN_MEMORY_KIB} KiB, time cost "
        f"{OWASP_MIN_TIME_COST}, parallelism 1 (AUTH_ARGON2_* unset)"
    )


def _versions(suite: Suite) -> str:
    import gunicorn
    import sqlalchemy

    parts = [
        f"Python {platform.python_version()}",
        f"Flask {importlib.metadata.version('flask')}",
        f"gunicorn {gunicorn.__version__}",
        f"SQLAlchemy {sqlalchemy.__version__}",
    ]
    try:
        with psycopg.connect(ev.libpq_url(suite.database_urls["orders"])) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            parts.append(f"PostgreSQL {row[0] if row else '?'}")
    except psycopg.Error:
        pass
    try:
        with pika.BlockingConnection(pika.URLParameters(suite.amqp_url)) as connection:
            props = connection._impl.server_properties
            version = props.get("version", b"?")
            parts.append(f"RabbitMQ {version.decode() if isinstance(version, bytes) else version}")
    except pika.exceptions.AMQPError:
        pass
    for argv, name in (([wrk_path(), "-v"], "wrk"), (["nginx", "-v"], "nginx")):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = (out.stdout + out.stderr).strip().splitlines()
            if text:
                parts.append(text[0].replace("nginx version: ", "").split(" [")[0])
        except (OSError, WrkError, subprocess.SubprocessError):
            parts.append(f"{name} ?")
    return ", ".join(parts)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short version (< 2 minutes)")
    parser.add_argument("--runs", type=int, help="runs per measurement (median, min-max)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, help="wrk connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per service")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker")
    parser.add_argument("--no-outage", action="store_true", help="skip the broker outage phase")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument("--label", help="the command to quote in BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.label is None:
        args.label = "make bench-quick" if args.quick else "make bench"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write its results."""
    args = parse_args(argv)
    base = PLANS["quick" if args.quick else "full"]
    overrides = {
        k: v
        for k, v in {
            "runs": args.runs,
            "seconds": args.seconds,
            "connections": args.connections,
        }.items()
        if v is not None
    }
    plan = Plan(**{**base.__dict__, **overrides})
    if plan.runs < 1:
        raise SystemExit("--runs must be at least 1")
    try:
        wrk_path()
    except WrkError as exc:
        raise SystemExit(str(exc)) from None
    bench = Bench(plan, args)
    try:
        bench.setup()
        bench.describe()
        bench.http()
        bench.relay()
        bench.consumer()
        bench.e2e()
        if plan.profile_seconds and not args.no_profile:
            bench.profiles()
        bench.outage()
        json_path, chart_path = bench.finish()
    finally:
        bench.close()
    bench.log(f"done: {json_path.relative_to(ROOT)}, {chart_path.relative_to(ROOT)}, BENCHMARKS.md")
    for line in report.http_table(bench.results) + [""] + report.targets_table(bench.results):
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
