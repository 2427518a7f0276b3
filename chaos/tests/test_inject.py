"""The fault schedule: repeated every cycle, rotating targets, and which faults excuse a 503."""

from __future__ import annotations

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
