"""`make chaos`: the suite as deployed, a three-node broker, faults under load, a verdict.

    python -m chaos.run                       # CHAOS_ORDERS (5,000) orders at CHAOS_RATE (50/s)
    python -m chaos.run --orders 1500 --write-docs

Runs as root (network namespaces). Everything it creates (namespaces, the bridge, broker
nodes, databases, the vhost, Redis keys, processes) is removed at the end, also on failure
or Ctrl-C. The exit status is 0 only when the verdict passes.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import psycopg
import requests

from bench.events import ORDER_BODY, libpq_url
from bench.seeding import User, register_users
from bench.suite import WORKERS, Suite, SuiteOptions
from chaos import verdict
from chaos.cluster import AMQP_PORT, Cluster, ClusterNode
from chaos.proxy import Balancer
from chaos.report import MARK_END as MARK_END  # re-exported: importable from here as before
from chaos.report import MARK_START as MARK_START
from chaos.report import chart, markdown, write_docs
from shared import faults
from shared.messaging import queue_name
from tests import support

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
PARTITION_SECONDS = 20.0
CYCLE_SECONDS = 60.0
# (offset in the cycle, fault kind)
SCHEDULE = (
    (5.0, "crash:" + faults.RELAY_AFTER_PUBLISH),
    (10.0, "kill-leader"),
    (28.0, "crash:" + faults.CONSUMER_AFTER_COMMIT),
    (33.0, "partition"),
    (55.0, "crash:" + faults.DELIVERY_AFTER_SEND),
)
CRASH_TARGETS = {
    faults.RELAY_AFTER_PUBLISH: "orders.relay",
    faults.CONSUMER_AFTER_COMMIT: "notifications.consume",
    faults.DELIVERY_AFTER_SEND: "notifications.deliver",
}


def log(message: str) -> None:
    sys.stdout.write(f"[chaos {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stdout.flush()


# -- the webhook receiver ----------------------------------------------------------------------


class Receiver:
    """An HTTP endpoint that answers 204 and records every `webhook-id` it gets."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        lock = threading.Lock()
        ids = self.ids

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with lock:
                    ids.append(self.headers.get("webhook-id") or "")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Answer:
    due: float
    answered: float
    status: int
    order_id: str | None
    user: int


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

    def __post_init__(self) -> None:
        self.cluster = Cluster(self.base / "broker")
        self.balancer = Balancer([(n.address, AMQP_PORT) for n in self.cluster.nodes], 0)
        self.receiver = Receiver()
        self.suite: Suite | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.started = time.time()
        self.endpoints: dict[int, str] = {}
        self.people: list[User] = []
        self.drive_started = time.time()
        self.leader_name = ""
        self.last_depth = 0

    # -- set-up ----------------------------------------------------------------------------

    def start(self) -> None:
        self.phase = "cluster"
        log("starting the three-node broker in network namespaces")
        self.cluster.start()
        self.balancer.port = support.free_port()
        self.balancer.start()
        broker = support.Broker(self.cluster.ctl, f"127.0.0.1:{self.balancer.port}")
        self.phase = "suite"
        log(f"broker up ({', '.join(n.nodename for n in self.cluster.nodes)}); starting the suite")
        self.suite = Suite(
            SuiteOptions(
                workers=2,
                threads=4,
                base_dir=self.base / "suite",
                broker=broker,
                start_timeout=300.0,
                extra_env={
                    "AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200",
                    "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
                    "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
                    "NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE": "true",
                },
            )
        )
        self.suite.start()
        for name in SCALED:
            self._second(name)
        self.phase = "users"
        self.people = register_users(self.suite, self.users, label="chaos")
        for index, person in enumerate(self.people):
            if index % 4 == 0:  # a quarter of the users have a webhook
                self.endpoints[index] = self._subscribe(person, index)
        log(f"{len(self.people)} users, {len(self.endpoints)} with a webhook")
        threading.Thread(target=self._supervise, name="supervisor", daemon=True).start()
        threading.Thread(target=self._watch_leader, name="leader", daemon=True).start()

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
            total += _scalar(
                self.suite.database_urls[service],
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL",
            )
        notifications_db = self.suite.database_urls["notifications"]
        total += _scalar(notifications_db, "SELECT count(*) FROM deliveries WHERE status='pending'")
        made = _scalar(
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
        while not self.stopping.wait(1.0):
            try:
                backlog, made = self.backlog()
            except psycopg.Error:
                continue
            answers = list(self.answers)
            accepted = sum(1 for a in answers if a.status == 201)
            sample = Sample(
                time.time() - self.drive_started, accepted, len(answers) - accepted, made, backlog
            )
            self.samples.append(sample)
            if sample.at - last_print >= 5:
                last_print = sample.at
                log(
                    f"{self.phase}: placed {len(answers)}/{self.orders} (accepted {accepted},"
                    f" errors {sample.errors}), notifications {made}, backlog {backlog},"
                    f" last fault: {self.last_fault}"
                )

    # -- load ----------------------------------------------------------------------------------

    def drive(self) -> None:
        """Place the orders open-loop through the gateway while the faults run."""
        from concurrent.futures import ThreadPoolExecutor

        assert self.suite is not None
        url = self.suite.url("gateway", "/api/v1/orders")
        local = threading.local()

        def send(k: int, due: float) -> None:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
                session.trust_env = False
            user = k % len(self.people)
            try:
                answer = session.post(
                    url,
                    json=ORDER_BODY,
                    headers={"Authorization": f"Bearer {self.people[user].token}"},
                    timeout=30,
                )
                status = answer.status_code
                order_id = answer.json().get("id") if status == 201 else None
            except requests.RequestException:
                status, order_id = 0, None
            self.answers.append(Answer(due, time.time(), status, order_id, user))

        self.phase = "load"
        self.drive_started = time.time()
        threading.Thread(target=self._sample, name="sampler", daemon=True).start()
        chaos = threading.Thread(target=self._inject, name="faults", daemon=True)
        chaos.start()
        with ThreadPoolExecutor(max_workers=64, thread_name_prefix="driver") as pool:
            start = time.time() + 0.2
            for k in range(self.orders):
                due = start + k / self.rate
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(send, k, due)
        self.phase = "faults ending"
        chaos.join()

    # -- faults --------------------------------------------------------------------------------

    def _inject(self) -> None:
        """Run the schedule, cycle after cycle, while orders are being placed."""
        seconds = self.orders / self.rate
        plan = [
            (cycle * CYCLE_SECONDS + offset, kind)
            for cycle in range(int(seconds // CYCLE_SECONDS) + 1)
            for offset, kind in SCHEDULE
            if cycle * CYCLE_SECONDS + offset < seconds
        ]
        running = []
        for at, kind in plan:
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
            log(f"fault {kind} failed: {exc!r}")

    def _now(self) -> float:
        return time.time() - self.drive_started

    def _fault(self, kind: str) -> None:
        assert self.suite is not None
        start = self._now()
        if kind.startswith("crash:"):
            point = kind.split(":", 1)[1]
            target = CRASH_TARGETS[point]
            self.last_fault = f"{target} armed at {point}"
            log(f"fault: {self.last_fault}")
            with self.lock:
                self.suite.stop_processes([target])
                service, args = WORKERS[target]
                process = self.suite.spawn(
                    target,
                    [sys.executable, *args],
                    {"SERVICE_NAME": service, "FAULT_POINTS": point},
                )
            try:
                process.popen.wait(timeout=90)
                died = process.popen.returncode == -signal.SIGKILL
            except subprocess.TimeoutExpired:
                died = False
            if died:
                # The fault is the crash itself, not the wait for the process to get there.
                crashed = self._now()
                self.faults.append(verdict.Fault(f"crash {point}", target, crashed, crashed))
                log(f"fault: {target} killed itself at {point}")
            else:
                log(f"fault: {target} has not reached {point} in 90 s (left armed)")
        elif kind == "kill-leader":
            node = self.leader()
            self.last_fault = f"kill -9 {node.nodename} (queue leader)"
            log(f"fault: {self.last_fault}")
            node.kill()
            time.sleep(NODE_DOWN_SECONDS)
            node.start()
            node.wait_until_accepting(timeout=120)
            self.faults.append(verdict.Fault("kill -9 leader", node.nodename, start, self._now()))
            log(f"fault over: {node.nodename} back")
        elif kind == "partition":
            node = self.leader()
            self.last_fault = f"partition {node.nodename} from its peers"
            log(f"fault: {self.last_fault} for {PARTITION_SECONDS:.0f}s")
            self.cluster.network.partition(node.host)
            time.sleep(PARTITION_SECONDS)
            self.cluster.network.heal(node.host)
            node.wait_until_accepting(timeout=120)
            self.faults.append(verdict.Fault("partition", node.nodename, start, self._now()))
            log(f"fault over: {node.nodename} healed")

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
        assert self.suite is not None
        answers = list(self.answers)
        accepted = {a.order_id: a.user for a in answers if a.status == 201 and a.order_id}
        orders_db = self.suite.database_urls["orders"]
        notifications_db = self.suite.database_urls["notifications"]
        stored = _rows(orders_db, "SELECT id::text FROM orders")
        unknown = [row[0] for row in stored if row[0] not in accepted]
        notes = _rows(
            notifications_db,
            "SELECT subject_id, id::text FROM notifications WHERE event_type='order.created'",
        )
        deliveries = {
            row[0]: (row[1], row[2], row[3])
            for row in _rows(
                notifications_db,
                "SELECT d.id::text, d.channel, n.subject_id, d.endpoint_id::text FROM deliveries d"
                " JOIN notifications n ON n.id = d.notification_id"
                " WHERE n.event_type = 'order.created'",  # not the sign-up mails
            )
        }
        mails = []
        for delivery_id in _message_ids(self.suite.dir / "mail"):
            if delivery_id in deliveries:
                mails.append((deliveries[delivery_id][1], delivery_id))
        hooks = []
        for delivery_id in list(self.receiver.ids):
            if delivery_id in deliveries:
                _, order, endpoint = deliveries[delivery_id]
                hooks.append((f"{order}/{endpoint}", delivery_id))
            else:
                hooks.append((f"unknown/{delivery_id}", delivery_id))
        expected_hooks = [
            f"{order}/{self.endpoints[user]}"
            for order, user in accepted.items()
            if user in self.endpoints
        ]
        tallies = {
            "orders stored": verdict.tally(
                list(accepted), [(r[0], r[0]) for r in stored], ignore=unknown
            ),
            "notifications": verdict.tally(list(accepted), notes, ignore=unknown),
            "mails": verdict.tally(list(accepted), mails, ignore=unknown),
            "webhooks": verdict.tally(
                expected_hooks,
                hooks,
                ignore=[f"{o}/{e}" for o in unknown for e in self.endpoints.values()],
            ),
        }
        statuses = [a.status for a in answers]
        queues = self._queues()
        leftovers = {
            "outbox unsent (auth, orders)": sum(
                _scalar(
                    self.suite.database_urls[s], "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
                )
                for s in ("auth", "orders")
            ),
            "deliveries pending": _scalar(
                notifications_db, "SELECT count(*) FROM deliveries WHERE status='pending'"
            ),
            "deliveries failed": _scalar(
                notifications_db, "SELECT count(*) FROM deliveries WHERE status='failed'"
            ),
            **{f"queue {name}": depth for name, depth in queues.items() if depth},
        }
        recoveries = [
            {
                "fault": f.kind,
                "target": f.target,
                "at": round(f.start, 1),
                "lasted": round(f.end - f.start, 1),
                "recovered_after": _round(
                    verdict.recovery_time(
                        f,
                        [(s.at, s.backlog) for s in self.samples],
                        slack=int(self.rate * 2),
                    )
                ),
            }
            for f in self.faults
        ]
        passed = (
            all(t.ok for t in tallies.values())
            and verdict.forbidden_errors(statuses) == 0
            and not any(leftovers[k] for k in leftovers if k != "deliveries failed")
            and leftovers["deliveries failed"] == 0
        )
        answered = [a for a in answers if a.status]
        span = max(a.answered for a in answered) - min(a.due for a in answered) if answered else 0
        return {
            "passed": passed,
            "achieved_rate": round(len(answered) / span, 1) if span else 0.0,
            "orders": {"placed": len(answers), "accepted": len(accepted), "unknown": len(unknown)},
            "tallies": verdict.summarize(tallies),
            "lost_examples": {k: t.lost[:5] for k, t in tallies.items() if t.lost},
            "duplicated_examples": {
                k: t.duplicated[:5] for k, t in tallies.items() if t.duplicated
            },
            "http_errors": verdict.http_errors(statuses),
            "forbidden_errors": verdict.forbidden_errors(statuses),
            "leftovers": leftovers,
            "faults": recoveries,
            "restarts": dict(self.restarts),
            "users": len(self.people),
            "webhook_users": len(self.endpoints),
            "rate": self.rate,
        }

    def _queues(self) -> dict[str, int]:
        assert self.suite is not None
        listing = self.cluster.ctl(
            "list_queues", "-p", self.suite.vhost, "name", "messages", "--formatter", "json"
        )
        return {str(row["name"]): int(row.get("messages") or 0) for row in json.loads(listing)}

    def stop(self, *, keep_logs: bool = False) -> None:
        self.stopping.set()
        self.phase = "cleaning up"
        if self.suite is not None:
            with self.lock:
                # The vhost and the users go with the cluster: no rabbitmqctl round trips.
                self.suite.vhost, self.suite.service_amqp_urls = "", {}
                self.suite.stop()
        self.balancer.stop()
        self.receiver.stop()
        self.cluster.stop()
        if keep_logs:
            log(f"logs kept in {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _scalar(url: str, sql: str) -> int:
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as conn:
        return list(conn.execute(sql).fetchall())


_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([0-9a-f-]{36})@", re.IGNORECASE | re.MULTILINE)


def _message_ids(directory: Path) -> list[str]:
    """The delivery id in each mail's Message-ID, one entry per mail received."""
    found = []
    for path in directory.glob("*.eml"):
        head = path.read_bytes()[:4096]
        match = _MESSAGE_ID.search(head)
        if match:
            found.append(match.group(1).decode())
    return found


# -- entry point ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__)
    parser.add_argument("--orders", type=int, default=int(os.environ.get("CHAOS_ORDERS", 5000)))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("CHAOS_RATE", 50)))
    parser.add_argument("--users", type=int, default=int(os.environ.get("CHAOS_USERS", 20)))
    parser.add_argument(
        "--write-docs", action="store_true", help="write the results into docs/reliability.md"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.stderr.write("make chaos needs root: it creates network namespaces\n")
        return 2
    run = Run(orders=args.orders, rate=args.rate, users=args.users)
    passed = False
    # SIGTERM (a CI timeout) ends the run through the same clean-up as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run.start()
        run.drive()
        settled = run.settle()
        result = run.observe()
        log(json.dumps(result, indent=2))
        if args.write_docs:
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
