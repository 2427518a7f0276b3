"""The faults of a chaos run, and when they strike: a schedule repeated every cycle while
orders are being placed.

Each fault runs in a thread of its own and records a `verdict.Fault` (what, on what, from
when to when, in seconds since the first order) once it is over. The kinds:

* `crash:<point>`: the process restarted with `FAULT_POINTS=<point>` kills itself there;
* `kill-leader`: `kill -9` of the broker node leading the notifications queue, back later;
* `partition`: that node cut off from the other two (nft drop in its namespace);
* `pg-restart:<service>`: that service's PostgreSQL stopped with `-m immediate` (a crash:
  no checkpoint, every backend killed), then started again, which replays its WAL;
* `pg-freeze:<service>`: SIGSTOP of its postmaster and every backend for FREEZE_SECONDS:
  the port still accepts, nothing answers (a blackholed database);
* `redis-kill`: `kill -9` of the gateway's Redis, started again REDIS_DOWN_SECONDS later;
* `web-kill:<service>`: `kill -9` of one gunicorn worker of the service (its master forks
  a new one);
* `gateway-kill:<name>`: `kill -9` of one of the two gateways' gunicorn master (the harness's
  supervisor starts it again; the driver reaches the other through the balancer).

A `*` target rotates through ROTATIONS, one per cycle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from bench.suite import WORKERS
from chaos import verdict
from shared import faults
from tests import support

if TYPE_CHECKING:
    from chaos.run import Run

CYCLE_SECONDS = 50.0
# (offset in the cycle, fault). Broker faults are 25 s apart so that the killed node is
# back before another is cut off (two nodes out of three down would stop the broker).
SCHEDULE: tuple[tuple[float, str], ...] = (
    (2.0, "kill-leader"),
    (5.0, "crash:" + faults.RELAY_AFTER_PUBLISH),
    (8.0, "redis-kill"),
    (15.0, "web-kill:orders"),
    (18.0, "crash:" + faults.CONSUMER_AFTER_COMMIT),
    (20.0, "gateway-kill:*"),
    (24.0, "pg-freeze:orders"),
    (27.0, "partition"),
    (38.0, "pg-restart:*"),
    (42.0, "crash:" + faults.DELIVERY_AFTER_SEND),
)
# The version under `make test`: one node kill and each crash point once.
SHORT_SCHEDULE: tuple[tuple[float, str], ...] = (
    (1.0, "kill-leader"),
    (2.0, "crash:" + faults.RELAY_AFTER_PUBLISH),
    (3.0, "crash:" + faults.CONSUMER_AFTER_COMMIT),
    (4.0, "crash:" + faults.DELIVERY_AFTER_SEND),
)
ROTATIONS = {
    "pg-restart": ("orders", "notifications", "auth"),
    "gateway-kill": ("gateway#2", "gateway"),
}
CRASH_TARGETS = {
    faults.RELAY_AFTER_PUBLISH: "orders.relay",
    faults.CONSUMER_AFTER_COMMIT: "notifications.consume",
    faults.DELIVERY_AFTER_SEND: "notifications.deliver",
}
PARTITION_SECONDS = 20.0
FREEZE_SECONDS = 10.0
REDIS_DOWN_SECONDS = 5.0
# How long an armed process may take to reach its crash point before it is left armed.
CRASH_WAIT_SECONDS = 90.0
# Guards every run's `under_way` (the faults run in threads of their own).
_UNDER_WAY_LOCK = threading.Lock()

# The faults during which a POST /api/v1/orders may be answered 503 (the documented answer
# while a dependency of that request is out), by kind, and the targets that count: the
# gateway's Redis, the orders service's own database and web workers. A database of
# another service is not on that request's path, so a 503 then is a fault of ours.
ANSWERS_503 = {
    "kill redis": None,
    "kill -9 web worker": ("orders",),
    "freeze PostgreSQL": ("orders",),
    "restart PostgreSQL": ("orders",),
}
# Killing a gateway resets the connections it had open (the answer cannot come from it);
# the driver retries those with the same Idempotency-Key through the other gateway.
RESETS_CONNECTIONS = frozenset({"kill -9 gateway"})


def plan(
    schedule: Sequence[tuple[float, str]], cycle: float, seconds: float
) -> list[tuple[float, str]]:
    """Every (offset since the first order, fault) within `seconds`, the schedule repeated."""
    planned = []
    for number in range(int(seconds // cycle) + 1):
        for offset, kind in schedule:
            at = number * cycle + offset
            if at >= seconds:
                continue
            name, _, target = kind.partition(":")
            if target == "*":
                rotation = ROTATIONS[name]
                kind = f"{name}:{rotation[number % len(rotation)]}"
            planned.append((at, kind))
    return sorted(planned)


def allows_503(fault: verdict.Fault) -> bool:
    """True when a 503 of POST /orders during this fault is the documented answer."""
    if fault.kind not in ANSWERS_503:
        return False
    targets = ANSWERS_503[fault.kind]
    return targets is None or fault.target.split()[0] in targets


def overlap_key(kind: str) -> str:
    """What a fault must not overlap: its own previous instance, still under way.

    The same crash point (arming it again restarts the process still on its way to the
    point, so on a loaded machine, where a restart takes longer than a cycle, no crash ever
    lands), any gateway kill (the other gateway still booting would leave the clients none),
    and every other kind against itself.
    """
    name = kind.partition(":")[0]
    return kind if name == "crash" else name


def inject(run: Run, kind: str) -> None:
    """Inject one fault and record it in `run.faults` once it is over; skipped, and
    recorded as such, while the previous fault of its kind is still under way."""
    key = overlap_key(kind)
    with _UNDER_WAY_LOCK:
        if key in run.under_way:
            run.skipped_faults.append(kind)
            run.log(f"fault {kind} skipped: the previous one is not over")
            return
        run.under_way.add(key)
    try:
        _inject(run, kind)
    finally:
        with _UNDER_WAY_LOCK:
            run.under_way.discard(key)


def _inject(run: Run, kind: str) -> None:
    name, _, target = kind.partition(":")
    if name == "crash":
        _crash(run, target)
    elif name == "kill-leader":
        _kill_leader(run)
    elif name == "partition":
        _partition(run)
    elif name == "pg-restart":
        _restart_postgres(run, target)
    elif name == "pg-freeze":
        _freeze_postgres(run, target)
    elif name == "redis-kill":
        _kill_redis(run)
    elif name == "web-kill":
        _kill_web_worker(run, target)
    elif name == "gateway-kill":
        _kill_gateway(run, target)
    else:
        raise ValueError(f"unknown fault {kind}")


def _begin(run: Run, what: str) -> float:
    run.last_fault = what
    run.log(f"fault: {what}")
    return run.now()


def _record(run: Run, kind: str, target: str, start: float, end: float) -> None:
    run.faults.append(verdict.Fault(kind, target, start, end))
    run.log(f"fault over: {kind} {target} ({end - start:.1f} s)")


def _crash(run: Run, point: str) -> None:
    assert run.suite is not None
    target = CRASH_TARGETS[point]
    _begin(run, f"{target} armed at {point}")
    with run.lock:
        run.suite.stop_processes([target])
        service, args = WORKERS[target]
        process = run.suite.spawn(
            target, [sys.executable, *args], {"SERVICE_NAME": service, "FAULT_POINTS": point}
        )
    try:
        process.popen.wait(timeout=CRASH_WAIT_SECONDS)
        died = process.popen.returncode == -signal.SIGKILL
    except subprocess.TimeoutExpired:
        died = False
    if died:
        # The fault is the crash itself, not the wait for the process to get there.
        crashed = run.now()
        run.faults.append(verdict.Fault(f"crash {point}", target, crashed, crashed))
        run.log(f"fault: {target} killed itself at {point}")
    else:
        run.log(f"fault: {target} has not reached {point} in {CRASH_WAIT_SECONDS:.0f} s (armed)")


def _kill_leader(run: Run) -> None:
    node = run.leader()
    start = _begin(run, f"kill -9 {node.nodename} (queue leader)")
    node.kill()
    time.sleep(run.node_down_seconds)
    node.start()
    node.wait_until_accepting(timeout=120)
    _record(run, "kill -9 leader", node.nodename, start, run.now())


def _partition(run: Run) -> None:
    node = run.leader()
    start = _begin(run, f"partition {node.nodename} from its peers for {PARTITION_SECONDS:.0f} s")
    run.cluster.network.partition(node.host)
    time.sleep(PARTITION_SECONDS)
    run.cluster.network.heal(node.host)
    node.wait_until_accepting(timeout=120)
    _record(run, "partition", node.nodename, start, run.now())


def _restart_postgres(run: Run, service: str) -> None:
    server = run.postgres[service]
    start = _begin(run, f"{service} PostgreSQL stopped -m immediate, then started")
    server.stop("immediate")
    server.start()
    _record(run, "restart PostgreSQL", f"{service} PostgreSQL", start, run.now())


def _freeze_postgres(run: Run, service: str) -> None:
    server = run.postgres[service]
    start = _begin(run, f"{service} PostgreSQL frozen (SIGSTOP) for {FREEZE_SECONDS:.0f} s")
    server.freeze()
    try:
        time.sleep(FREEZE_SECONDS)
    finally:
        server.thaw()
    _record(run, "freeze PostgreSQL", f"{service} PostgreSQL", start, run.now())


def _kill_redis(run: Run) -> None:
    start = _begin(run, f"kill -9 redis-server (the gateway's), back in {REDIS_DOWN_SECONDS:.0f} s")
    run.redis.kill()
    time.sleep(REDIS_DOWN_SECONDS)
    run.redis.start()
    _record(run, "kill redis", "redis", start, run.now())


def _kill_web_worker(run: Run, service: str) -> None:
    assert run.suite is not None
    master = run.suite.processes[service].popen.pid
    before = children(master)
    if not before:
        raise RuntimeError(f"{service} has no gunicorn worker to kill")
    victim = before[0]
    start = _begin(run, f"kill -9 {service} gunicorn worker {victim}")
    os.kill(victim, signal.SIGKILL)
    # Over when the master has forked its replacement.
    support.wait_for(
        lambda: len([p for p in children(master) if p != victim]) >= len(before),
        timeout=60,
        interval=0.1,
        what=f"{service} gunicorn worker replaced",
    )
    _record(run, "kill -9 web worker", f"{service} worker {victim}", start, run.now())


def _kill_gateway(run: Run, name: str) -> None:
    assert run.suite is not None
    if name not in run.suite.processes:
        raise RuntimeError(f"no gateway {name} in this run")
    port = run.web_ports[name]
    start = _begin(run, f"kill -9 {name} (gunicorn master and, orphaned, its workers)")
    master = run.suite.processes[name].popen.pid
    workers = children(master)
    os.kill(master, signal.SIGKILL)
    for pid in workers:
        # As a node's OOM killer or a lost VM would: the workers die with it.
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # The harness's supervisor starts it again; over when it answers its health check.
    support.wait_for(
        lambda: _healthy(f"http://127.0.0.1:{port}/healthz"),
        timeout=300,  # a gunicorn boot takes minutes on a machine loaded far past its cores
        interval=0.25,
        what=f"{name} answering again",
    )
    _record(run, "kill -9 gateway", name, start, run.now())


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (gunicorn's workers under their master)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command may hold spaces and parentheses: the fields follow the last ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)
