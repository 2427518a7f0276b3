"""The fault schedule: repeated every cycle, rotating targets, and which faults excuse a 503."""

from __future__ import annotations

import threading
import time

import chaos.inject
from chaos.inject import SCHEDULE, allows_503, plan
from chaos.verdict import Fault


def test_the_schedule_repeats_within_the_load_and_rotates_its_targets() -> None:
    planned = plan(((1.0, "redis-kill"), (30.0, "pg-restart:*")), 50.0, 140.0)
    assert planned == [
        (1.0, "redis-kill"),
        (30.0, "pg-restart:orders"),
        (51.0, "redis-kill"),
        (80.0, "pg-restart:notifications"),
        (101.0, "redis-kill"),
        (130.0, "pg-restart:auth"),
    ]


def test_a_5000_order_run_has_every_fault_twice() -> None:
    kinds = [kind for _, kind in plan(SCHEDULE, 50.0, 5000 / 50)]
    for _, kind in SCHEDULE:
        name = kind.split(":*")[0]
        assert sum(1 for k in kinds if k.startswith(name)) == 2, kind


def test_only_a_dependency_of_placing_an_order_excuses_a_503() -> None:
    assert allows_503(Fault("kill redis", "redis", 0, 1))
    assert allows_503(Fault("freeze PostgreSQL", "orders PostgreSQL", 0, 1))
    assert allows_503(Fault("kill -9 web worker", "orders worker 42", 0, 1))
    assert not allows_503(Fault("restart PostgreSQL", "notifications PostgreSQL", 0, 1))
    assert not allows_503(Fault("kill -9 leader", "rabbit@rmq1", 0, 1))


class _Run:
    """What inject() needs of a run to decide whether a fault may start."""

    def __init__(self) -> None:
        self.under_way: set[str] = set()
        self.skipped_faults: list[str] = []

    def log(self, message: str) -> None:
        pass


def test_a_fault_is_skipped_while_its_previous_one_is_under_way(monkeypatch) -> None:
    """A crash point armed again while the first armed process is still on its way there
    would restart that process before it crashed; a second gateway kill while the first
    gateway boots would leave the clients no gateway."""
    release = threading.Event()
    started: list[str] = []

    def slow(run: object, kind: str) -> None:
        started.append(kind)
        release.wait(5)

    monkeypatch.setattr(chaos.inject, "_inject", slow)
    run = _Run()
    first = threading.Thread(target=chaos.inject.inject, args=(run, "crash:relay.after_publish"))
    gateway = threading.Thread(target=chaos.inject.inject, args=(run, "gateway-kill:gateway#2"))
    first.start()
    gateway.start()
    while len(started) < 2:
        time.sleep(0.01)
    chaos.inject.inject(run, "crash:relay.after_publish")  # the same point: skipped
    chaos.inject.inject(run, "gateway-kill:gateway")  # the other gateway: skipped too
    chaos.inject.inject(run, "crash:consumer.after_commit")  # another point: not held up
    assert run.skipped_faults == ["crash:relay.after_publish", "gateway-kill:gateway"]
    release.set()
    first.join()
    gateway.join()
    assert run.under_way == set()
    chaos.inject.inject(run, "crash:relay.after_publish")  # the first is over: injected
    assert started.count("crash:relay.after_publish") == 2
