"""How every worker process runs: its loops in threads, SIGTERM/SIGINT, /metrics and /healthz.

    sys.exit(run_worker([relay_task(...), periodic_task("outbox-purge", 600, purge)]))

Every worker's command line has one shape, `python -m <package>.worker COMMAND [flags]`,
built by `worker_main` from its `Command`s (a relay takes RELAY_ARGUMENTS everywhere).

Relays, consumers, the delivery worker and the gateway's revocation consumer all run this
way, so they stop alike and expose the same probes on METRICS_PORT.

The main thread only waits. The signal handler sets a plain attribute and nothing else:
anything that takes a lock (threading.Event.set does) could deadlock on a lock the code it
interrupted holds. The main thread sees the flag and calls each task's stop(); the tasks
finish what they hold (the relay its batch, a consumer its delivered messages) and return.

When a task's thread ends by itself (an unexpected error), /healthz answers 503, the other
tasks are stopped and the process exits 1, so the supervisor (compose, Kubernetes) restarts it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any

from sqlalchemy.orm import Session

from shared import contracts, observability
from shared.config import ConfigError
from shared.events import Event
from shared.inbox import InboxMixin, purge_handled
from shared.messaging import BrokerUnavailable, Consumer, ProducerCheck, TopologyError
from shared.outbox import OutboxMixin, purge_sent, run_relay
from shared.uow import unit_of_work

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


@dataclass(frozen=True)
class Task:
    """One loop of a worker process: `run` blocks until `stop` (called from another thread)."""

    name: str
    run: Callable[[], None]
    stop: Callable[[], None]


def consumer_task(consumer: Consumer) -> Task:
    """The consumer's loop as a task."""
    return Task(f"consumer-{consumer.consumer}", consumer.run, consumer.stop)


def relay_task(
    session_factory: Callable[[], Session],
    model: type[OutboxMixin],
    amqp_url: str,
    *,
    batch_size: int = 500,
    idle_seconds: float = 0.05,
) -> Task:
    """The outbox relay as a task (it also keeps the outbox backlog gauges current)."""
    stop = threading.Event()

    def run() -> None:
        run_relay(
            session_factory,
            model,
            amqp_url,
            batch_size=batch_size,
            idle_seconds=idle_seconds,
            stop_event=stop,
        )

    return Task("outbox-relay", run, stop.set)


def periodic_task(name: str, interval: float, action: Callable[[], object]) -> Task:
    """Run `action` now and then every `interval` seconds; a failure is logged, retried later."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                action()
            except Exception:
                # Housekeeping: the next round tries again, the worker's real job goes on.
                log.exception("periodic task failed", extra={"task": name})
            stop.wait(interval)  # set from the main thread, never from a signal handler

    return Task(name, run, stop.set)


def batched_purge(
    session_factory: Callable[[], Session],
    delete_batch: Callable[[Session, int], int],
    *,
    batch_size: int,
    message: str,
    count_field: str,
) -> Callable[[], int]:
    """An action calling `delete_batch` in committed batches until one comes back short.

    `delete_batch(session, limit)` deletes at most `limit` rows and says how many; the
    outbox and inbox purges below are two, a service's own tables (logs) may be others.
    """

    def purge() -> int:
        total = 0
        while True:
            # Batches keep each transaction (and the WAL burst) small on a busy table.
            with session_factory() as session, unit_of_work(session):
                deleted = delete_batch(session, batch_size)
            total += deleted
            if deleted < batch_size:
                break
        if total:
            log.info(message, extra={count_field: total})
        return total

    return purge


def outbox_purge(
    session_factory: Callable[[], Session],
    model: type[OutboxMixin],
    retention: timedelta,
    *,
    batch_size: int = 10_000,
) -> Callable[[], int]:
    """An action deleting outbox rows sent more than `retention` ago, in committed batches."""
    return batched_purge(
        session_factory,
        lambda session, limit: purge_sent(session, model, retention, limit=limit),
        batch_size=batch_size,
        message="purged sent outbox events",
        count_field="sent_events",
    )


def inbox_purge(
    session_factory: Callable[[], Session],
    model: type[InboxMixin],
    retention: timedelta,
    *,
    batch_size: int = 10_000,
) -> Callable[[], int]:
    """An action deleting inbox rows received more than `retention` ago, in committed batches."""
    return batched_purge(
        session_factory,
        lambda session, limit: purge_handled(session, model, retention, limit=limit),
        batch_size=batch_size,
        message="purged old inbox rows",
        count_field="inbox_rows",
    )


def consumer_from_config(
    config: Mapping[str, Any],
    consumer: str,
    routing_keys: Iterable[str],
    handler: Callable[[Event], None],
    **options: Any,
) -> Consumer:
    """A Consumer with the suite's settings (AMQP_URL, EVENT_DELIVERY_LIMIT, EVENT_RETRY_DELAYS)
    that accepts each event type only from its producer's broker user (the catalogue's)."""
    producers = ProducerCheck.for_consumer(
        config["AMQP_URL"], consumer, contracts.CATALOGUE.producer_services()
    )
    return Consumer(
        config["AMQP_URL"],
        consumer,
        list(routing_keys),
        handler,
        delivery_limit=int(config["EVENT_DELIVERY_LIMIT"]),
        retry_delays=[float(d) for d in config["EVENT_RETRY_DELAYS"]],
        producers=producers,
        **options,
    )


def setup_topology(consumer: Consumer, *, timeout: float = 60.0) -> int:
    """The `setup` command of a consuming service: declare its queues, consume nothing."""
    try:
        consumer.setup(timeout=timeout)
    except TopologyError as exc:
        log.error("the broker refused the queues", extra={"error": str(exc)})
        return EXIT_CONFIG
    except BrokerUnavailable as exc:
        log.error("cannot declare the queues", extra={"error": str(exc)})
        return EXIT_FAILED
    log.info(
        "queues declared",
        extra={"consumer": consumer.consumer, "routing_keys": consumer.routing_keys},
    )
    return EXIT_OK


class Worker:
    """Runs tasks in threads until a stop is requested or one of them ends by itself."""

    def __init__(self, tasks: Sequence[Task], *, poll_interval: float = 0.2) -> None:
        if not tasks:
            raise ValueError("a worker needs at least one task")
        self.tasks = list(tasks)
        self.poll_interval = poll_interval
        self._threads: list[threading.Thread] = []
        self._crashed: list[str] = []
        self._stop_requested = False
        self.metrics_server: observability.MetricsServer | None = None

    def request_stop(self) -> None:
        """Ask every task to stop; only sets a flag, so it is safe in a signal handler."""
        self._stop_requested = True

    def alive(self) -> bool:
        """True while every task's thread runs (what /healthz reports)."""
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def run(self, *, handle_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (0) or until a task ends on its own (1)."""
        if handle_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        # On METRICS_PORT (none when unset), until every task has finished stopping. First,
        # so that a port already taken fails the start before any task runs.
        self.metrics_server = server = observability.start_metrics_server(alive=self.alive)
        self._threads = [
            threading.Thread(target=self._run_task, args=(task,), name=task.name)
            for task in self.tasks
        ]
        for thread in self._threads:
            thread.start()
        log.info("worker started", extra={"tasks": [task.name for task in self.tasks]})
        try:
            while not self._stop_requested and self.alive():
                time.sleep(self.poll_interval)
            if not self._stop_requested:
                log.error("a worker task ended unexpectedly; stopping the others")
            for task in self.tasks:
                task.stop()
            for thread in self._threads:
                thread.join()
        finally:
            if server is not None:
                server.close()
        if self._crashed or not self._stop_requested:
            return EXIT_FAILED
        log.info("worker stopped")
        return EXIT_OK

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # The main thread only sleeps in run(), so this log call meets no lock it holds.
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        self.request_stop()

    def _run_task(self, task: Task) -> None:
        try:
            task.run()
        except BaseException:
            self._crashed.append(task.name)
            log.exception("worker task crashed", extra={"task": task.name})
            return
        if not self._stop_requested:
            self._crashed.append(task.name)
            log.error("worker task returned before a stop", extra={"task": task.name})


def run_worker(tasks: Sequence[Task], *, cleanup: Callable[[], None] | None = None) -> int:
    """Run a worker process's tasks until SIGTERM/SIGINT; the exit status to return."""
    try:
        return Worker(tasks).run()
    finally:
        if cleanup is not None:
            cleanup()


# -- the command line ------------------------------------------------------------------------

# (flags, argparse options) of one command-line argument.
Argument = tuple[Sequence[str], Mapping[str, Any]]

# The outbox relay's flags, the same in every service that relays.
RELAY_ARGUMENTS: tuple[Argument, ...] = (
    (("--batch-size",), {"type": int, "default": 500, "help": "outbox rows per batch"}),
    (
        ("--idle-seconds",),
        {"type": float, "default": 0.05, "help": "pause when the outbox is empty"},
    ),
)


def relay_options(args: argparse.Namespace) -> dict[str, Any]:
    """`relay_task`'s keyword arguments from the RELAY_ARGUMENTS flags."""
    return {"batch_size": args.batch_size, "idle_seconds": args.idle_seconds}


@dataclass(frozen=True)
class Command:
    """One command of a worker's command line: what it does, its flags, and how it runs."""

    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Sequence[Argument] = ()


def worker_main(
    prog: str,
    commands: Mapping[str, Command],
    argv: Sequence[str] | None = None,
    *,
    default: str | None = None,
) -> int:
    """Parse `prog COMMAND [flags]`, run the command, return its exit status.

    `default` is the command when none is given. A ConfigError while starting is logged and
    is exit status EXIT_CONFIG (2, like a usage error), not a traceback.
    """
    parser = argparse.ArgumentParser(prog=prog)
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in commands.items():
        subparser = subcommands.add_parser(name, help=command.help, description=command.help)
        for flags, options in command.arguments:
            subparser.add_argument(*flags, **options)
    arguments = list(argv) if argv is not None else None
    if default is not None and not (arguments if arguments is not None else sys.argv[1:]):
        arguments = [default]
    args = parser.parse_args(arguments)
    try:
        return commands[args.command].run(args)
    except ConfigError as exc:
        log.error("cannot start", extra={"command": args.command, "error": str(exc)})
        return EXIT_CONFIG
