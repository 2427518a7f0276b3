"""The backlog drain after an outage of a second RabbitMQ node the bench starts itself."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TYPE_CHECKING

from bench import events as ev
from bench import report
from bench.seeding import User, register_users
from bench.suite import queue_exists
from shared.messaging import queue_name
from tests.support import nodes, wait_for

if TYPE_CHECKING:
    from bench.harness import Bench


def outage(bench: Bench) -> None:
    """Backlog drain after an outage of a second RabbitMQ node the bench starts itbench."""
    server = os.path.join(nodes.RABBITMQ_SBIN, "rabbitmq-server")
    reason = ""
    if bench.args.no_outage:
        reason = "disabled (--no-outage)"
    elif bench.plan.outage_events == 0:
        reason = "skipped in quick mode (booting a second broker node alone takes ~10 s)"
    elif not os.path.exists(server):
        reason = f"no {server}"
    if reason:
        bench.results["events"]["outage"] = {"not_run": reason}
        return
    count = bench.plan.outage_events
    bench.log(f"outage: second RabbitMQ node, {count:,} orders while it is down")
    bench.settle()
    node_dir = bench.work / "rabbit-node"
    node_dir.mkdir()
    node = nodes.RabbitNode(str(node_dir))
    user = register_users(bench.suite, 1, label="outage")[0]
    node.start()
    names = ["outage.orders.relay", "outage.notifications.consume"]
    try:
        if node._process is not None:
            bench.extra_roots["rabbitmq (bench node)"] = [node._process.pid]
        # The suite's own relay and consumer step aside; these two use the second node.
        bench.suite.stop_processes(["orders.relay", "notifications.consume"])
        env = {"AMQP_URL": node.url}
        bench.suite.spawn(
            names[0],
            [sys.executable, "-m", "services.orders.worker", "relay"],
            {**env, "SERVICE_NAME": "orders"},
        )
        bench.suite.spawn(
            names[1],
            [sys.executable, "-m", "services.notifications.worker", "consume"],
            {**env, "SERVICE_NAME": "notifications"},
        )
        wait_for(
            lambda: queue_exists(node.url, queue_name("notifications")),
            timeout=60,
            what="notifications queue on the second node",
        )
        runs = [_outage_run(bench, node, user) for _ in range(bench.plan.runs)]
        bench.results["events"]["outage"] = {
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
        bench.suite.stop_processes(names)
        bench.extra_roots.pop("rabbitmq (bench node)", None)
        node.stop()
        shutil.rmtree(node_dir, ignore_errors=True)
        # The suite's own relay and consumer come back: a phase after this one needs them.
        for own in ("orders.relay", "notifications.consume"):
            if own not in bench.suite.processes:
                bench.suite.start_worker(own)


def _outage_run(bench: Bench, node: nodes.RabbitNode, user: User) -> ev.DrainRun:
    """Stop the node's broker, place orders, start it again, time the drain."""
    bench.settle()
    count = bench.plan.outage_events
    start = bench.meter.snapshot()
    node.stop_app()
    down = time.time()
    errors = ev.post_orders(bench.suite.url("orders", "/api/v1/orders"), [user.token], count)
    node.start_app()
    up = time.time()

    def drained() -> tuple[float, float] | None:
        # Only this run's notifications: the ones created since the broker went down.
        seen, first, last = ev.count_since(
            bench.suite.database_urls["notifications"], user.id, after=down
        )
        if seen < count - errors or first is None or last is None:
            return None
        return first, last

    first, last = wait_for(drained, timeout=900, interval=0.2, what="outage backlog drained")
    bench.cpu.setdefault("backlog after an outage", []).append(
        bench.meter.between("backlog after an outage", start, bench.meter.snapshot(), {})
    )
    return ev.DrainRun(
        events=count - errors,
        post_errors=errors,
        outage_seconds=up - down,
        first_after_seconds=first - up,
        drain_seconds=last - up,
    )
