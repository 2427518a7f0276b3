"""`make chaos`: the suite as deployed, a three-node broker, faults under load, a verdict.

    python -m chaos.run                       # CHAOS_ORDERS (5,000) orders at CHAOS_RATE (50/s)
    python -m chaos.run --orders 1500 --write-docs

Runs as root (network namespaces). The suite gets servers of its own that the faults may
break: the broker cluster, a PostgreSQL server per service (initdb in a temporary
directory, as the postgres user, on a free port) and a redis-server; the shared ones are
never touched. Everything it creates (namespaces, the bridge, broker nodes, database
servers, Redis, processes) is removed at the end, also on failure or Ctrl-C. The exit
status is 0 only when the verdict passes. The schedule of faults is in chaos.inject.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import psycopg
import requests

from bench.seeding import User, register_users
from bench.suite import SERVICES, WEB_APPS, WORKERS, Suite, SuiteOptions, gunicorn_argv
from chaos import inject, observe, verdict
from chaos.cluster import AMQP_PORT, Cluster, ClusterNode
from chaos.driver import Answer, Driver, Receiver
from chaos.proxy import Balancer
from chaos.report import MARK_END as MARK_END  # re-exported: importable from here as before
from chaos.report import MARK_START as MARK_START
from chaos.report import chart, markdown, write_docs
from shared.messaging import queue_name
from tests import support
from tests.support import nodes

ROOT = Path(__file__).resolve().parents[1]
# Every process that scales runs twice, as deployed; the SMTP sink and the gateway's
# revocation listener are one each.
SCALED = (
    "auth.relay",
    "orders.relay",
    "orders.consume",
    "notifications.consume",
    "notifications.deliver",
)
NODE_DOWN_SECONDS = 10.0  # a killed node comes back after this, as its supervisor restarts it
# Kept importable from here; they live with the rest of the schedule.
PARTITION_SECONDS = inject.PARTITION_SECONDS
CYCLE_SECONDS = inject.CYCLE_SECONDS
SCHEDULE = inject.SCHEDULE
CRASH_TARGETS = inject.CRASH_TARGETS
# The deadlines on every database engine (shared.db): a database that stops answering
# costs a request at most about connect + statement timeout, then a 503. Set here, as an
# operator would, shorter than the suite's defaults (5 s and 15 s), so that the freeze of
# FREEZE_SECONDS shows requests failing rather than waiting the freeze out.
DATABASE_TIMEOUTS = {
    "DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
    "DATABASE_STATEMENT_TIMEOUT_SECONDS": "5",
}


def log(message: str) -> None:
    sys.stdout.write(f"[chaos {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stdout.flush()


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    accepted: int
    errors: int
    notifications: int
    backlog: int


@dataclass
class Run:
    """One chaos run: owns the cluster, the balancer, the suite and what was observed."""

    orders: int
    rate: float
    users: int
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chaos-")))
    answers: list[Answer] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    faults: list[verdict.Fault] = field(default_factory=list)
    restarts: Counter[str] = field(default_factory=Counter)
    phase: str = "starting"
    last_fault: str = "-"
    # The faults, repeated every `cycle` seconds while orders are placed (chaos.inject).
    schedule: tuple[tuple[float, str], ...] = inject.SCHEDULE
    cycle: float = inject.CYCLE_SECONDS
    # Lean: one gunicorn worker per service, one of each background process, one gateway,
    # a short delivery lease (the version under `make test`, which must start quickly).
    lean: bool = False
    node_down_seconds: float = NODE_DOWN_SECONDS
    calls: list[verdict.Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cluster = Cluster(self.base / "broker")
        self.balancer = Balancer([(n.address, AMQP_PORT) for n in self.cluster.nodes], 0)
        # The suite's own database servers and Redis, which the faults restart and freeze.
        self.postgres = {name: nodes.PostgresNode(synchronous_commit=True) for name in SERVICES}
        (self.base / "redis").mkdir(parents=True, exist_ok=True)
        self.redis = nodes.RedisNode(self.base / "redis")
        self.gateways = 1 if self.lean else 2
        self.front: Balancer | None = None  # the driver's one address for the gateways
        self.web_ports: dict[str, int] = {}
        self.receiver = Receiver()
        self.suite: Suite | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watchers: list[threading.Thread] = []  # the threads that read the suite until stop
        self.started = time.time()
        self.endpoints: dict[int, str] = {}
        self.people: list[User] = []
        self.drive_started = time.time()
        self.leader_name = ""
        self.last_depth = 0
        self.failed_faults: list[str] = []
        self.skipped_faults: list[str] = []
        self.under_way: set[str] = set()  # chaos.inject.overlap_key of each fault under way

    # -- set-up ----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        log(message)

    def now(self) -> float:
        """Seconds since the first order (the time base of faults, calls and samples)."""
        return time.time() - self.drive_started

    def _now(self) -> float:
        return self.now()

    def _start_servers(self) -> None:
        """The broker cluster, a PostgreSQL server per service and Redis, side by side."""
        from concurrent.futures import ThreadPoolExecutor

        def postgres(node: nodes.PostgresNode) -> None:
            node.init()
            node.start()

        with ThreadPoolExecutor(max_workers=len(self.postgres) + 2) as pool:
            started = [pool.submit(self.cluster.start), pool.submit(self.redis.start)]
            started += [pool.submit(postgres, node) for node in self.postgres.values()]
            for future in started:
                future.result()

    def start(self) -> None:
        self.phase = "servers"
        log(
            "starting the three-node broker in network namespaces, a PostgreSQL server per"
            " service and a redis-server"
        )
        self._start_servers()
        self.balancer.port = support.free_port()
        self.balancer.start()
        broker = support.Broker(self.cluster.ctl, f"127.0.0.1:{self.balancer.port}")
        self.phase = "suite"
        log(f"broker up ({', '.join(n.nodename for n in self.cluster.nodes)}); starting the suite")
        extra_env = {
            "AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200",
            "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
            "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
            "NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE": "true",
            **DATABASE_TIMEOUTS,
        }
        if self.lean:
            # A delivery worker killed mid-send leaves its claims until the lease ends,
            # which must be twice the longest send.
            extra_env["NOTIFICATIONS_DELIVERY_LEASE_SECONDS"] = "10"
            extra_env["SMTP_TIMEOUT_SECONDS"] = "5"
        self.suite = Suite(
            SuiteOptions(
                workers=1 if self.lean else 2,
                threads=4,
                base_dir=self.base / "suite",
                broker=broker,
                start_timeout=300.0,
                extra_env=extra_env,
                database_admin_urls={name: node.url for name, node in self.postgres.items()},
                redis_url=self.redis.url,
            )
        )
        self.suite.start()
        self.web_ports = {name: self.suite.ports[name] for name in WEB_APPS}
        if not self.lean:
            for name in SCALED:
                self._second(name)
            self.web_ports["gateway#2"] = support.free_port()
            self._start_web("gateway#2")
            support.wait_for(
                lambda: self._answers(f"http://127.0.0.1:{self.web_ports['gateway#2']}/healthz"),
                timeout=300,
                what="the second gateway healthy",
            )
        gateways = [("127.0.0.1", port) for n, port in self.web_ports.items() if "gateway" in n]
        self.front = Balancer(gateways, support.free_port())
        self.front.start()
        self.phase = "users"
        self.people = register_users(self.suite, self.users, label="chaos")
        for index, person in enumerate(self.people):
            if index % 4 == 0:  # a quarter of the users have a webhook
                self.endpoints[index] = self._subscribe(person, index)
        log(f"{len(self.people)} users, {len(self.endpoints)} with a webhook")
        self._watch(self._supervise, "supervisor")
        self._watch(self._watch_leader, "leader")

    def _watch(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.watchers.append(thread)

    def _start_web(self, name: str) -> None:
        """Start (again) a web process by name: `orders`, `gateway`, `gateway#2`, ..."""
        assert self.suite is not None
        base = name.split("#")[0]
        argv = gunicorn_argv(
            WEB_APPS[base],
            self.web_ports[name],
            workers=self.suite.options.workers,
            threads=self.suite.options.threads,
        )
        self.suite.spawn(name, argv, {"SERVICE_NAME": base})

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _second(self, name: str) -> None:
        assert self.suite is not None
        service, args = WORKERS[name]
        self.suite.spawn(f"{name}#2", [sys.executable, *args], {"SERVICE_NAME": service})

    def _subscribe(self, person: User, index: int) -> str:
        assert self.suite is not None
        answer = requests.post(
            self.suite.url("gateway", "/api/v1/notifications/webhooks"),
            json={
                "url": f"http://127.0.0.1:{self.receiver.port}/hooks/{index}",
                "event_types": ["order.created"],
                "description": "chaos receiver",
            },
            headers={"Authorization": f"Bearer {person.token}"},
            timeout=30,
        )
        if answer.status_code != 201:
            raise RuntimeError(f"webhook registration answered {answer.status_code}: {answer.text}")
        return str(answer.json()["id"])

    # -- the supervisor: restart what died, as systemd or Kubernetes would ---------------------

    def _supervise(self) -> None:
        assert self.suite is not None
        while not self.stopping.wait(0.5):
            with self.lock:
                for name, process in list(self.suite.processes.items()):
                    if process.popen.poll() is None or name.startswith("prepare-"):
                        continue
                    base = name.split("#")[0]
                    if name in self.web_ports:
                        self.restarts[name] += 1
                        self._start_web(name)
                        continue
                    if base not in WORKERS:
                        continue
                    self.restarts[name] += 1
                    service, args = WORKERS[base]
                    self.suite.spawn(name, [sys.executable, *args], {"SERVICE_NAME": service})

    # -- sampling and progress ---------------------------------------------------------------

    def backlog(self) -> tuple[int, int]:
        """(backlog, notifications): unsent outbox rows, queued events, due deliveries."""
        assert self.suite is not None
        total = 0
        for service in ("auth", "orders"):
            total += observe.scalar(
                self.suite.database_urls[service],
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL",
            )
        notifications_db = self.suite.database_urls["notifications"]
        total += observe.scalar(
            notifications_db, "SELECT count(*) FROM deliveries WHERE status='pending'"
        )
        made = observe.scalar(
            notifications_db, "SELECT count(*) FROM notifications WHERE event_type='order.created'"
        )
        depth = self.queue_depth(queue_name("notifications"))
        if depth is not None:
            self.last_depth = depth
        # Unknown while the broker fails over: the last depth seen stands in for it.
        return total + self.last_depth, made

    def queue_depth(self, queue: str) -> int | None:
        assert self.suite is not None
        params = pika.URLParameters(self.suite.amqp_url)
        params.connection_attempts = 1
        params.socket_timeout = 2
        params.blocked_connection_timeout = 2
        try:
            with pika.BlockingConnection(params) as connection:
                frame = connection.channel().queue_declare(queue=queue, passive=True)
                return int(frame.method.message_count)
        except (pika.exceptions.AMQPError, OSError):
            return None

    def _sample(self) -> None:
        last_print = 0.0
        backlog, made, known = 0, 0, True
        while not self.stopping.wait(1.0):
            try:
                backlog, made = self.backlog()
                known = True
            except psycopg.Error:
                # A database is down or frozen: no sample, but the progress line goes on.
                known = False
            answers = list(self.answers)
            accepted = sum(1 for a in answers if a.status == 201)
            sample = Sample(
                time.time() - self.drive_started, accepted, len(answers) - accepted, made, backlog
            )
            if known:
                self.samples.append(sample)
            if sample.at - last_print >= 5:
                last_print = sample.at
                log(
                    f"{self.phase}: placed {len(answers)}/{self.orders} (accepted {accepted},"
                    f" errors {sample.errors}), notifications {made},"
                    f" backlog {backlog if known else 'unknown (a database is out)'},"
                    f" last fault: {self.last_fault}"
                )

    # -- load ----------------------------------------------------------------------------------

    def drive(self) -> None:
        """Place the orders open-loop through the gateway while the faults run."""
        assert self.suite is not None
        # Through the gateways' balancer when this run started one (a subclass may not).
        url = (
            f"http://127.0.0.1:{self.front.port}/api/v1/orders"
            if self.front is not None
            else self.suite.url("gateway", "/api/v1/orders")
        )
        tokens = [person.token for person in self.people]
        driver = Driver(url, tokens, self.now, calls=self.calls, answers=self.answers)
        self.phase = "load"
        self.drive_started = time.time()
        self._watch(self._sample, "sampler")
        chaos = threading.Thread(target=self._inject, name="faults", daemon=True)
        chaos.start()
        driver.run(self.orders, self.rate)
        self.phase = "faults ending"
        chaos.join()

    # -- faults --------------------------------------------------------------------------------

    def _inject(self) -> None:
        """Run the schedule, cycle after cycle, while orders are being placed."""
        planned = inject.plan(self.schedule, self.cycle, self.orders / self.rate)
        if self.gateways < 2:
            planned = [(at, kind) for at, kind in planned if not kind.startswith("gateway-kill")]
        running = []
        for at, kind in planned:
            delay = self.drive_started + at - time.time()
            if delay > 0:
                time.sleep(delay)
            # Each fault in a thread of its own: one that lasts (an armed process waiting
            # for its crash point, a node coming back) does not push the others back.
            thread = threading.Thread(target=self._fault_reported, args=(kind,), daemon=True)
            thread.start()
            running.append(thread)
        for thread in running:
            thread.join()

    def _fault_reported(self, kind: str) -> None:
        try:
            self._fault(kind)
        except Exception as exc:  # a fault that could not be injected is reported, not fatal
            self.failed_faults.append(f"{kind}: {exc!r}")
            log(f"fault {kind} failed: {exc!r}")

    def _fault(self, kind: str) -> None:
        inject.inject(self, kind)

    def leader(self) -> ClusterNode:
        """The node leading the notifications queue (the busiest quorum queue), as last seen.

        Looked up in the background: a rabbitmqctl round trip takes seconds on a loaded
        machine, and a fault must not wait for it.
        """
        if self.leader_name:
            return self.cluster.node(self.leader_name)
        log("leader not known yet; taking the first node")
        return self.cluster.nodes[0]

    def _watch_leader(self) -> None:
        assert self.suite is not None
        while not self.stopping.is_set():
            try:
                listing = self.cluster.ctl(
                    "list_queues",
                    *("-p", self.suite.vhost, "name", "leader", "--formatter", "json"),
                    timeout=60,
                )
                for row in json.loads(listing):
                    if row.get("name") == queue_name("notifications") and row.get("leader"):
                        self.leader_name = str(row["leader"])
            except (RuntimeError, ValueError) as exc:
                log(f"leader lookup failed: {exc!r}")
            self.stopping.wait(5)

    # -- the end -------------------------------------------------------------------------------

    def settle(self, timeout: float = 300.0) -> float:
        """Wait until nothing is in flight: backlog 0 and no retry or dead letter queued."""
        self.phase = "settling"
        started = time.time()
        wanted = sum(1 for a in self.answers if a.status == 201)

        def idle() -> bool:
            backlog, made = self.backlog()
            return backlog == 0 and made >= wanted

        try:
            support.wait_for(idle, timeout=timeout, interval=1.0, what="pipeline idle")
        except support.WaitTimeout as exc:
            log(f"warning: {exc}")
        time.sleep(3)  # a last redelivery in flight would show up now
        return time.time() - started

    def observe(self) -> dict[str, Any]:
        """Count what happened against what was accepted; the verdict as a dict."""
        return observe.outcome(self)

    def _queues(self) -> dict[str, int]:
        assert self.suite is not None
        listing = self.cluster.ctl(
            "list_queues", "-p", self.suite.vhost, "name", "messages", "--formatter", "json"
        )
        return {str(row["name"]): int(row.get("messages") or 0) for row in json.loads(listing)}

    def stop(self, *, keep_logs: bool = False) -> None:
        self.stopping.set()
        self.phase = "cleaning up"
        # A watcher in the middle of a round reads the suite's addresses: let it finish
        # before they go (each round's calls have timeouts of a few seconds).
        for thread in self.watchers:
            thread.join(timeout=30)
        if self.suite is not None:
            with self.lock:
                # The vhost and the users go with the cluster, the databases
                # with their servers: no round trips to make.
                self.suite.vhost, self.suite.service_amqp_urls = "", {}
                if self.suite.options.database_admin_urls:
                    self.suite.database_urls = {}
                self.suite.stop()
        if self.front is not None:
            self.front.stop()
        self.balancer.stop()
        self.receiver.stop()
        self.cluster.stop()
        for name, node in self.postgres.items():
            try:
                node.thaw()  # interrupted mid-freeze: a stopped server cannot shut down
            except (OSError, ValueError):
                pass
            if keep_logs and os.path.exists(node.log_path):
                shutil.copy(node.log_path, self.base / f"postgres-{name}.log")
            node.destroy()
        self.redis.stop()
        if keep_logs:
            log(f"logs kept in {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)


# -- entry point ---------------------------------------------------------------------------------


def short_run() -> Run:
    """The version under `make test`: 400 orders at 20/s on a lean suite, a broker node
    killed (back after 2 s) and each crash point reached once."""
    return Run(
        orders=400,
        rate=20.0,
        users=4,
        lean=True,
        schedule=inject.SHORT_SCHEDULE,
        cycle=1000.0,  # once
        node_down_seconds=2.0,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__)
    parser.add_argument("--orders", type=int, default=int(os.environ.get("CHAOS_ORDERS", 5000)))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("CHAOS_RATE", 50)))
    parser.add_argument("--users", type=int, default=int(os.environ.get("CHAOS_USERS", 20)))
    parser.add_argument(
        "--write-docs", action="store_true", help="write the results into docs/reliability.md"
    )
    parser.add_argument(
        "--short", action="store_true", help="the short version `make test` runs (no docs)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.stderr.write("make chaos needs root: it creates network namespaces\n")
        return 2
    run = short_run() if args.short else Run(orders=args.orders, rate=args.rate, users=args.users)
    passed = False
    # SIGTERM (a CI timeout) ends the run through the same clean-up as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run.start()
        run.drive()
        settled = run.settle()
        result = run.observe()
        log(json.dumps(result, indent=2))
        if args.write_docs and not args.short:
            chart_name = "timeline.png"
            chart(run, ROOT / "docs" / "reliability" / chart_name)
            command = f"make chaos CHAOS_ORDERS={args.orders}"
            section = markdown(result, command=command, chart_name=chart_name, settle=settled)
            write_docs(section, ROOT / "docs" / "reliability.md")
            log("wrote docs/reliability.md and docs/reliability/timeline.png")
        passed = bool(result["passed"])
        log(f"verdict: {'PASS' if passed else 'FAIL'}")
        return 0 if passed else 1
    finally:
        # A second SIGTERM or Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        run.stop(keep_logs=not passed)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
