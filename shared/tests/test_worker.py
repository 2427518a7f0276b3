"""The worker runner: tasks in threads, a clean stop, a crash the supervisor sees, the purge."""

from __future__ import annotations

import importlib
import threading
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from shared.config import ConfigError
from shared.db import utcnow
from shared.events import new_event
from shared.outbox import purge_sent, record_event
from shared.tests.conftest import Outbox
from shared.worker import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    RELAY_ARGUMENTS,
    Command,
    Task,
    Worker,
    outbox_purge,
    periodic_task,
    worker_main,
)
from tests.support import wait_for


def blocking_task(name: str) -> tuple[Task, threading.Event]:
    """A task that runs until stopped; the event tells that it was."""
    stopped = threading.Event()
    return Task(name, lambda: stopped.wait(30), stopped.set), stopped


def run_in_thread(worker: Worker) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(worker.run(handle_signals=False)))
    thread.start()
    return thread, result


def test_a_requested_stop_stops_every_task_and_exits_zero():
    (first, first_stopped), (second, second_stopped) = blocking_task("a"), blocking_task("b")
    worker = Worker([first, second], poll_interval=0.02)
    thread, result = run_in_thread(worker)
    wait_for(worker.alive, timeout=5)

    worker.request_stop()
    thread.join(10)

    assert result == [EXIT_OK]
    assert first_stopped.is_set() and second_stopped.is_set()


def test_a_crashed_task_fails_the_health_probe_stops_the_others_and_exits_one(monkeypatch):
    monkeypatch.setenv("METRICS_PORT", "0")
    monkeypatch.setenv("METRICS_HOST", "127.0.0.1")
    crash = threading.Event()

    def crashing() -> None:
        crash.wait(30)
        raise RuntimeError("bug in the loop")

    # The other task takes its time to stop, as a consumer finishing its messages does.
    release = threading.Event()
    slow_stop_asked = threading.Event()

    def slow_loop() -> None:
        slow_stop_asked.wait(30)
        release.wait(30)

    worker = Worker(
        [Task("crashing", crashing, crash.set), Task("slow", slow_loop, slow_stop_asked.set)],
        poll_interval=0.02,
    )
    thread, result = run_in_thread(worker)
    server = wait_for(lambda: worker.metrics_server, timeout=5)
    # The probe answers before the tasks' threads start (503 until they do).
    wait_for(worker.alive, timeout=5, what="the tasks started")
    health = f"http://127.0.0.1:{server.port}/healthz"
    assert requests.get(health, timeout=5).status_code == 200

    crash.set()
    wait_for(slow_stop_asked.is_set, timeout=5, what="the other task asked to stop")
    assert requests.get(health, timeout=5).status_code == 503
    release.set()
    thread.join(10)

    assert result == [EXIT_FAILED]


def test_a_task_that_returns_before_any_stop_counts_as_a_failure():
    survivor, _ = blocking_task("survivor")
    worker = Worker([Task("quitter", lambda: None, lambda: None), survivor], poll_interval=0.02)

    assert worker.run(handle_signals=False) == EXIT_FAILED


def test_a_periodic_task_runs_again_after_a_failure():
    calls: list[int] = []

    def action() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database busy")

    task = periodic_task("purge", 0.01, action)
    thread = threading.Thread(target=task.run)
    thread.start()
    try:
        wait_for(lambda: len(calls) >= 3, timeout=5)
    finally:
        task.stop()
        thread.join(5)
    assert not thread.is_alive()


def sent_rows(session_factory, ages: list[timedelta | None]) -> None:
    """One outbox row per age: sent that long ago, or unsent (None)."""
    with session_factory() as session:
        for _ in ages:
            record_event(session, new_event("order.created", "/orders", {}), model=Outbox)
        session.flush()
        rows = session.scalars(sa.select(Outbox).order_by(Outbox.id)).all()
        for row, age in zip(rows, ages, strict=True):
            row.sent_at = None if age is None else utcnow() - age
        session.commit()


def test_the_purge_deletes_old_sent_events_in_batches_and_keeps_the_rest(session_factory):
    old = timedelta(days=8)
    sent_rows(session_factory, [old] * 5 + [timedelta(minutes=1), None])

    purged = outbox_purge(session_factory, Outbox, timedelta(days=7), batch_size=2)()

    assert purged == 5
    with session_factory() as session:
        left = session.scalars(sa.select(Outbox.sent_at)).all()
    assert len(left) == 2
    assert None in left


def test_purge_sent_stops_at_its_limit(session_factory):
    sent_rows(session_factory, [timedelta(days=8)] * 3)
    with session_factory() as session:
        assert purge_sent(session, Outbox, timedelta(days=7), limit=2) == 2
        session.commit()
        assert purge_sent(session, Outbox, timedelta(days=7), limit=2) == 1
        session.commit()


@pytest.mark.integration
def test_the_purge_finds_its_rows_through_an_index(pg_engine):
    # Sequential scans priced out: the plan names an index only if one can serve the query.
    with pg_engine.connect() as connection:
        connection.execute(sa.text("SET enable_seqscan = off"))
        statement = (
            sa.select(Outbox.id)
            .where(Outbox.sent_at.is_not(None), Outbox.sent_at < utcnow())
            .limit(1000)
        )
        compiled = statement.compile(pg_engine, compile_kwargs={"literal_binds": True})
        plan = "\n".join(connection.scalars(sa.text(f"EXPLAIN {compiled}")))
    assert "ix_outbox_sent_at" in plan, plan


# -- the command line every worker shares ---------------------------------------------------


def record(into: list):
    """A command body that records the parsed arguments and succeeds."""

    def run(args) -> int:
        into.append(vars(args))
        return EXIT_OK

    return run


def test_a_worker_command_gets_its_flags_and_their_defaults():
    seen: list = []
    commands = {"relay": Command("relay", record(seen), RELAY_ARGUMENTS)}

    assert worker_main("w", commands, ["relay", "--batch-size", "20"]) == EXIT_OK
    assert worker_main("w", commands, ["relay"]) == EXIT_OK
    assert seen == [
        {"command": "relay", "batch_size": 20, "idle_seconds": 0.05},
        {"command": "relay", "batch_size": 500, "idle_seconds": 0.05},
    ]


def test_no_command_runs_the_default_or_is_a_usage_error(capsys):
    seen: list = []
    commands = {
        "consume": Command("consume", record(seen)),
        "setup": Command("setup", record(seen)),
    }

    assert worker_main("w", commands, [], default="consume") == EXIT_OK
    assert seen == [{"command": "consume"}]
    with pytest.raises(SystemExit) as usage:
        worker_main("w", commands, [])
    assert usage.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_a_configuration_error_is_exit_status_2_not_a_traceback(caplog):
    def refuse(_args) -> int:
        raise ConfigError("AMQP_URL is not set")

    assert worker_main("w", {"consume": Command("consume", refuse)}, ["consume"]) == EXIT_CONFIG
    assert [record.error for record in caplog.records] == ["AMQP_URL is not set"]


@pytest.mark.parametrize(
    "module",
    [
        "services.auth.worker",
        "services.orders.worker",
        "services.notifications.worker",
        "gateway.worker",
    ],
)
def test_every_worker_has_the_one_command_line_shape(module, capsys):
    worker = importlib.import_module(module)

    with pytest.raises(SystemExit) as shown:
        worker.main(["--help"])
    assert shown.value.code == 0
    assert f"usage: python -m {module} [-h] COMMAND" in capsys.readouterr().out
    assert all(isinstance(command, Command) for command in worker.COMMANDS.values())
    if "relay" in worker.COMMANDS:
        assert worker.COMMANDS["relay"].arguments == RELAY_ARGUMENTS
    # Every command by the name that the Procfile, compose and Kubernetes use.
    assert set(worker.COMMANDS) <= {"relay", "consume", "deliver", "setup"}
