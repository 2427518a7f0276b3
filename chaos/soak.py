"""`make soak`: the suite under a steady load for a long time, no faults: does anything grow?

    python -m chaos.soak                          # SOAK_MINUTES (30) at SOAK_RATE (30 orders/s)
    python -m chaos.soak --minutes 3 --retention 40 --write-docs

The suite as `make chaos` runs it (bench/suite.py: gunicorn, every relay, consumer and
worker, each service as its own broker user), on the shared RabbitMQ, with the same
open-loop driver through the gateway. Every few seconds it samples the resident memory
and open files of every process (gunicorn's workers one by one) and the row count of every
table. The verdict (chaos.soak_verdict): after the warm-up, no process's memory or open
files grow by 10 % or more (connections that follow the load counted apart), every table
that is not the suite's data stays bounded, no process died, and, as for `make chaos`, no
accepted order's effect is lost or duplicated.

The inbox and outbox purges run with a retention of `--retention` seconds (SOAK_RETENTION_
SECONDS, 120) instead of days, so that a run of minutes sees them purge: what is measured is
that the purge keeps up, not the production retention. Exit status 0 when the verdict passes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from bench.events import libpq_url
from bench.seeding import register_users
from bench.suite import SERVICES, WEB_APPS, Suite, SuiteOptions
from chaos import soak_verdict
from chaos.run import Run, log
from tests import support

ROOT = Path(__file__).resolve().parents[1]
PROCESS_SECONDS = 5.0  # between two samples of every process
TABLE_SECONDS = 15.0  # between two counts of every table
# The suite's data: one row (or a few) per order, growing with the load by design.
DATA_TABLES = (
    "orders.orders",
    "orders.order_items",
    "notifications.notifications",
    "notifications.deliveries",
    # One per webhook delivery attempt, kept as long as its delivery (30 days).
    "notifications.webhook_attempts",
)


def client_connections(process: psutil.Process, port: int) -> int:
    """The connections `process` accepted on `port` (its clients'), not those it opened.

    They follow the load, not the process: an open-loop driver opens another keep-alive
    connection whenever more orders are in flight than it has connections, and the worker
    holds each until the client closes it (the 16:49 soak's gateway workers went from 43
    to 58 open files in steps that matched slow spells, and back to 24 the moment the
    driver stopped). Counted apart, the rest of a worker's files and sockets (its database
    pools, its broker and Redis connections, logs) is what a leak would grow.
    """
    return sum(
        1
        for c in process.net_connections(kind="tcp")
        if c.raddr and c.laddr and c.laddr.port == port
    )


def server_connections(process: psutil.Process, port: int) -> int:
    """The connections `process` opened to a server listening on `port`."""
    return sum(1 for c in process.net_connections(kind="tcp") if c.raddr and c.raddr.port == port)


def file_kinds(process: psutil.Process, port_names: dict[int, str]) -> Counter[str]:
    """What `process`'s open files are, counted by kind: a TCP connection by the server it
    talks to (or the clients it serves), a pipe, an epoll, a file by path. Read after the
    warm-up and at the end of the load; the difference is reported for a process whose open
    files grew, to say which of them did."""
    kinds: Counter[str] = Counter()
    sockets = 0
    for fd in Path(f"/proc/{process.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed since the listing
        if target.startswith("socket:"):
            sockets += 1
        else:
            kinds[target.split("[")[0].rstrip(":") if "[" in target else f"file {target}"] += 1
    for c in process.net_connections(kind="inet"):
        sockets -= 1
        if c.raddr:
            local = port_names.get(c.laddr.port)
            server = (
                f"clients of {local}"
                if local
                else f"to {port_names.get(c.raddr.port, c.raddr.port)}"
            )
            kinds[f"tcp {server}"] += 1
        else:
            kinds[f"tcp listening ({port_names.get(c.laddr.port, c.laddr.port)})"] += 1
    if sockets > 0:
        kinds["other sockets (unix)"] += sockets
    return kinds


@dataclass
class Soak(Run):
    """A soak run: Run's driver, sampler and lost/duplicated verdict, without the cluster or
    the faults, plus the process and table samples."""

    minutes: float = 30.0
    warmup_minutes: float = 5.0
    retention: int = 120
    # name -> [(time since the first order, value)]
    rss: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    fds: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    tables: dict[str, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    load: list[tuple[float, float]] = field(default_factory=list)
    # The delivery worker's connections to the SMTP server: one per delivery thread with
    # mail to send, none while it has none; they follow the load, so they are counted apart
    # from its open files and held to that bound instead.
    mail_connections: list[tuple[float, int]] = field(default_factory=list)
    # name -> what its open files were, by kind, after the warm-up and at the last sample
    kinds_after_warmup: dict[str, Counter[str]] = field(default_factory=dict)
    kinds_at_end: dict[str, Counter[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Run also builds a broker cluster and its balancer; a soak never starts them (the
        # suite runs on the shared broker), so they hold nothing.
        super().__post_init__()
        self.last_fault = "none (soak)"
        self.labels: dict[int, str] = {}  # pid -> series name (gunicorn workers numbered)

    @property
    def purge_interval(self) -> int:
        """Seconds between purges: a quarter of the retention, so the peak stays near it."""
        return max(5, self.retention // 4)

    def start(self) -> None:
        self.phase = "suite"
        log(f"starting the suite (purge retention {self.retention} s)")
        purge = {
            "INBOX_RETENTION_SECONDS": str(self.retention),
            "INBOX_PURGE_INTERVAL_SECONDS": str(self.purge_interval),
            "ORDERS_OUTBOX_RETENTION_SECONDS": str(self.retention),
            "ORDERS_PURGE_INTERVAL_SECONDS": str(self.purge_interval),
            "AUTH_OUTBOX_RETENTION_SECONDS": str(self.retention),
            "AUTH_PURGE_INTERVAL_SECONDS": str(self.purge_interval),
            # Idempotency keys live a day in production; here as long as the events, so
            # the relay's purge of expired keys is what keeps their table flat.
            "ORDERS_IDEMPOTENCY_TTL_SECONDS": str(self.retention),
        }
        self.suite = Suite(
            SuiteOptions(
                workers=2,
                threads=4,
                base_dir=self.base / "suite",
                start_timeout=300.0,
                extra_env={
                    # Valid for the whole run: the driver logs in once.
                    "AUTH_ACCESS_TOKEN_TTL_SECONDS": str(int(self.minutes * 60) + 3600),
                    "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
                    "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
                    "NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE": "true",
                    **purge,
                },
            )
        )
        self.suite.start()
        threading.Thread(target=self._sample_resources, name="resources", daemon=True).start()
        self.phase = "users"
        self.people = register_users(self.suite, self.users, label="soak")
        for index, person in enumerate(self.people):
            if index % 4 == 0:  # a quarter of the users have a webhook, as in make chaos
                self.endpoints[index] = self._subscribe(person, index)
        log(f"{len(self.people)} users, {len(self.endpoints)} with a webhook")
        threading.Thread(target=self._supervise, name="supervisor", daemon=True).start()

    def _inject(self) -> None:
        """No faults: the soak measures the suite left alone."""

    # -- sampling ------------------------------------------------------------------------------

    def _sample_resources(self) -> None:
        last_tables = 0.0
        while not self.stopping.wait(PROCESS_SECONDS):
            now = time.time()
            self.load.append((now, os.getloadavg()[0]))
            for name, process in self._processes().items():
                try:
                    with process.oneshot():
                        rss, fds = process.memory_info().rss, process.num_fds()
                    fds -= self._load_connections(name, process, now)
                    self._note_kinds(name, process, now)
                except (psutil.Error, OSError):
                    continue
                self.rss[name].append((now, float(rss)))
                self.fds[name].append((now, float(fds)))
            if now - last_tables >= TABLE_SECONDS:
                last_tables = now
                try:
                    for name, rows in self._table_sizes().items():
                        self.tables[name].append((now, rows))
                except psycopg.Error as exc:
                    log(f"table count failed: {exc!r}")

    def _note_kinds(self, name: str, process: psutil.Process, now: float) -> None:
        """What the process's open files are, at the first sample after the warm-up and in
        the last few of the load (reading them costs more than counting them)."""
        since = now - self.drive_started
        if self.phase != "load" or not self.warmup_minutes * 60 <= since <= self.load_seconds:
            return
        if name not in self.kinds_after_warmup:
            self.kinds_after_warmup[name] = file_kinds(process, self._port_names())
        elif since >= self.load_seconds - 3 * PROCESS_SECONDS:
            self.kinds_at_end[name] = file_kinds(process, self._port_names())

    def _load_connections(self, name: str, process: psutil.Process, now: float) -> int:
        """The connections of `process` that follow the load rather than the process: a
        gunicorn worker's from its clients, the SMTP sink's from the delivery worker, the
        delivery worker's to the SMTP sink; 0 for any other process."""
        assert self.suite is not None
        smtp = int(self.suite.env["SMTP_PORT"])
        if name == "notifications.smtp":
            return client_connections(process, smtp)
        if name == "notifications.deliver":
            mail = server_connections(process, smtp)
            self.mail_connections.append((now, mail))
            return mail
        app = name.split(" worker ")[0]
        if app not in WEB_APPS or app == name:
            return 0
        return client_connections(process, self.suite.ports[app])

    def _port_names(self) -> dict[int, str]:
        """The suite's ports by what listens on them, to name a process's connections."""
        assert self.suite is not None
        names = {port: name for name, port in self.suite.ports.items()}
        names[int(self.suite.env["SMTP_PORT"])] = "smtp"
        names.update({5432: "postgresql", 6379: "redis", 5672: "rabbitmq"})
        return names

    @property
    def load_seconds(self) -> float:
        """How long the driver offers orders."""
        return self.orders / self.rate

    @property
    def delivery_threads(self) -> int:
        assert self.suite is not None
        return int(self.suite.env.get("NOTIFICATIONS_DELIVERY_THREADS", 4))

    def _processes(self) -> dict[str, psutil.Process]:
        """Every running process of the suite by series name; gunicorn's workers as
        `<app> worker <n>`, numbered in the order first seen (a replaced worker is a new one)."""
        assert self.suite is not None
        found: dict[str, psutil.Process] = {}
        with self.lock:
            pids = self.suite.pids()
        for name, pid in pids.items():
            if name.startswith("prepare-"):
                continue
            try:
                process = psutil.Process(pid)
                found[name] = process
                if name in WEB_APPS:
                    for child in sorted(process.children(), key=lambda p: p.pid):
                        if child.pid not in self.labels:
                            seen = sum(1 for v in self.labels.values() if v.startswith(name + " "))
                            self.labels[child.pid] = f"{name} worker {seen + 1}"
                        found[self.labels[child.pid]] = child
            except psutil.Error:
                continue
        return found

    def _table_sizes(self) -> dict[str, int]:
        """Rows of every table of every service, as `service.table`."""
        assert self.suite is not None
        sizes: dict[str, int] = {}
        for service in SERVICES:
            url = libpq_url(self.suite.database_urls[service])
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                names = [
                    str(row[0])
                    for row in conn.execute(
                        "SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public'"
                        " ORDER BY relname"
                    )
                ]
                for name in names:
                    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
                    row = conn.execute(query).fetchone()
                    sizes[f"{service}.{name}"] = int(row[0]) if row else 0
        return sizes

    def _queues(self) -> dict[str, int]:
        assert self.suite is not None
        listing = support.SHARED_BROKER.ctl(
            "list_queues", "-p", self.suite.vhost, "name", "messages", "--formatter", "json"
        )
        return {str(row["name"]): int(row.get("messages") or 0) for row in json.loads(listing)}

    # -- the verdict ---------------------------------------------------------------------------

    def relative(self, points: Sequence[tuple[float, Any]]) -> list[tuple[float, Any]]:
        """Samples with their time in seconds since the first order."""
        return [(at - self.drive_started, value) for at, value in points]

    def verdict(self, observed: dict[str, Any]) -> dict[str, Any]:
        """The soak's figures and verdict on top of observe()'s lost/duplicated one."""
        warmup = self.warmup_minutes * 60
        end = self.load_seconds
        during = {
            kind: {
                name: [(at, v) for at, v in self.relative(points) if at <= end]
                for name, points in series.items()
            }
            for kind, series in (("rss", self.rss), ("fds", self.fds))
        }
        memory = soak_verdict.resident(during["rss"], warmup=warmup, end=end)
        files = soak_verdict.resident(during["fds"], warmup=warmup, end=end)
        tables = {name: self.relative(points) for name, points in self.tables.items()}
        in_load = {name: [(at, r) for at, r in pts if at <= end] for name, pts in tables.items()}
        # A purge that runs one interval late (the loop busy, the machine loaded) leaves one
        # more interval of rows; ten seconds of orders are in flight besides. A table nothing
        # purges climbs by the whole second half of the run, far above that.
        bounds = soak_verdict.tables_bounded(
            in_load,
            warmup=warmup,
            data_tables=DATA_TABLES,
            slack=int(self.rate * (10 + self.purge_interval)),
        )
        loads = [value for at, value in self.relative(self.load) if 0 <= at <= end]
        mail_peak = max((n for _, n in self.mail_connections), default=0)
        mail_ok = mail_peak <= self.delivery_threads
        passed = (
            bool(observed["passed"])
            and mail_ok
            and all(g.ok for g in memory + files)
            and all(b.ok for b in bounds)
            and not self.restarts
        )
        return {
            **observed,
            "passed": passed,
            "effects_passed": observed["passed"],
            "minutes": self.minutes,
            "warmup_minutes": self.warmup_minutes,
            "retention": self.retention,
            "purge_interval": self.purge_interval,
            "memory": [_growth(g, scale=1 / 2**20) for g in memory],
            "files": [_growth(g) for g in files],
            # What changed in the open files of a process that failed the growth rule.
            "files_changed": {
                g.series: _changed(
                    self.kinds_after_warmup.get(g.series), self.kinds_at_end.get(g.series)
                )
                for g in files
                if not g.ok
            },
            "mail_connections": {
                "peak": mail_peak,
                "bound": self.delivery_threads,
                "ok": mail_ok,
            },
            "tables": [
                {
                    "table": b.table,
                    "first_half": b.first_half,
                    "second_half": b.second_half,
                    "ok": b.ok,
                }
                for b in bounds
            ],
            "data_tables": {
                name: points[-1][1]
                for name, points in tables.items()
                if name in DATA_TABLES and points
            },
            "load": {
                "cpus": os.cpu_count(),
                "mean": round(sum(loads) / len(loads), 1) if loads else None,
                "max": round(max(loads), 1) if loads else None,
            },
        }

    def stop(self, *, keep_logs: bool = False) -> None:
        self.stopping.set()
        self.phase = "cleaning up"
        if self.suite is not None:
            with self.lock:
                self.suite.stop()
        self.receiver.stop()
        if keep_logs:
            log(f"logs kept in {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)


def _changed(before: Counter[str] | None, after: Counter[str] | None) -> dict[str, int]:
    """Kind -> how many more (or fewer) open files of that kind at the end."""
    before, after = before or Counter(), after or Counter()
    return {k: after[k] - before[k] for k in sorted(before | after) if after[k] != before[k]}


def _growth(g: soak_verdict.Growth, scale: float = 1.0) -> dict[str, Any]:
    return {
        "series": g.series,
        "start": round(g.start * scale, 1),
        "end": round(g.end * scale, 1),
        "growth": None if g.missing else round(g.ratio * 100, 1),
        "ok": g.ok,
    }


# -- entry point ---------------------------------------------------------------------------------


def default_warmup(minutes: float, retention: int) -> float:
    """A quarter of the run, and at least until the first purges have trimmed the inbox and
    outbox to their steady size (retention plus two purge intervals), in minutes."""
    return max(minutes / 4, (retention * 1.5) / 60)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m chaos.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=float(env.get("SOAK_MINUTES", 30)))
    parser.add_argument("--rate", type=float, default=float(env.get("SOAK_RATE", 30)))
    parser.add_argument("--users", type=int, default=int(env.get("SOAK_USERS", 20)))
    parser.add_argument(
        "--retention",
        type=int,
        default=int(env.get("SOAK_RETENTION_SECONDS", 120)),
        help="inbox and outbox retention in seconds (purged every quarter of it)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=float(env["SOAK_WARMUP_MINUTES"]) if env.get("SOAK_WARMUP_MINUTES") else None,
        help="minutes not measured at the start (default: see default_warmup)",
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="write the results into docs/reliability.md"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    warmup = (
        args.warmup if args.warmup is not None else default_warmup(args.minutes, args.retention)
    )
    if warmup >= args.minutes:
        sys.stderr.write(
            f"the warm-up ({warmup:g} min) leaves nothing to measure in {args.minutes:g} min:"
            " run longer, or lower --retention or --warmup\n"
        )
        return 2
    soak = Soak(
        orders=round(args.minutes * 60 * args.rate),
        rate=args.rate,
        users=args.users,
        minutes=args.minutes,
        warmup_minutes=warmup,
        retention=args.retention,
    )
    passed = False
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        soak.start()
        soak.drive()
        settled = soak.settle()
        result = soak.verdict(soak.observe())
        log(json.dumps(result, indent=2))
        if args.write_docs:
            from chaos import soak_report

            soak_report.chart(soak, ROOT / "docs" / "reliability" / soak_report.CHART)
            command = f"make soak SOAK_MINUTES={args.minutes:g} SOAK_RATE={args.rate:g}"
            section = soak_report.markdown(result, command=command, settle=settled)
            soak_report.write_section(section, ROOT / "docs" / "reliability.md")
            log(f"wrote docs/reliability.md and docs/reliability/{soak_report.CHART}")
        passed = bool(result["passed"])
        log(f"verdict: {'PASS' if passed else 'FAIL'}")
        return 0 if passed else 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        soak.stop(keep_logs=not passed)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
