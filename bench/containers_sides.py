"""The two sides bench/containers.py measures: the bare suite and the compose stack.

Each starts, tells the seeding its verification links, waits for its event pipeline to be
idle, weighs its processes and stops. The bare side is the suite as `make bench` runs it
behind its nginx edge; the compose side is tests/compose/stack.py's stack with an override
(`compose_override`) that gives it the benchmark's rate limits and token lifetime.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml

from bench import seeding
from bench.edge import Edge
from bench.suite import Suite, SuiteOptions
from gateway.nginx.render import edge_limit_values
from shared.messaging import queue_name
from tests import support
from tests.compose.stack import ROOT, ComposeError, Stack, docker, new_stack
from tests.support import WaitTimeout, wait_for

# What `make bench` sets (bench/harness.py): tokens outlive the run, and the rate limits
# are paid (each request still counts in Redis) but never refuse the benchmark's load.
BENCH_ENV = {
    "AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200",
    "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
    "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
}
# docker stats' sizes: binary (KiB) and decimal (kB) units.
UNITS = {
    "b": 1,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}
SIZE = re.compile(r"^\s*([0-9.]+)\s*([a-zA-Z]+)\s*$")


# -- the compose side's pieces (pure) ------------------------------------------------------


def suite_services(compose: Mapping[str, Any]) -> list[str]:
    """The compose file's services that run one of the suite's images."""
    return [
        name
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("flask-suite/")
    ]


def compose_override(compose: Mapping[str, Any]) -> dict[str, Any]:
    """The override merged over docker-compose.yml: BENCH_ENV everywhere, the edge's limits."""
    services: dict[str, Any] = {
        name: {"environment": dict(BENCH_ENV)} for name in suite_services(compose)
    }
    # The edge limits at the gateway's rates, as bench/edge.py renders them for the bare side.
    services["edge"] = {"environment": edge_limit_values(BENCH_ENV)}
    return {"services": services}


def parse_size(text: str) -> int:
    """Bytes of a size as docker prints it (`45.3MiB`, `1.2GB`, `0B`); ValueError otherwise."""
    match = SIZE.match(text)
    if match is None or match.group(2).lower() not in UNITS:
        raise ValueError(f"not a size: {text!r}")
    return round(float(match.group(1)) * UNITS[match.group(2).lower()])


def parse_docker_stats(text: str, project: str) -> dict[str, int]:
    """Bytes in use per compose service, from `docker stats --no-stream` lines `NAME<TAB>USAGE`.

    USAGE is docker's `MemUsage` (`45.3MiB / 23.5GiB`); names are `<project>-<service>-<n>`
    (the compose plugin) or `<project>_<service>_<n>` (docker-compose 1.x). Lines of other
    projects and stopped containers (`-- / --`) are left out.
    """
    name_pattern = re.compile(rf"^/?{re.escape(project)}[-_](.+?)[-_]\d+$")
    usage: dict[str, int] = {}
    for line in text.splitlines():
        name, _, memory = line.partition("\t")
        found = name_pattern.match(name.strip())
        if found is None or not memory:
            continue
        try:
            used = parse_size(memory.split("/")[0])
        except ValueError:
            continue
        usage[found.group(1)] = usage.get(found.group(1), 0) + used
    return usage


def rss_tree(pid: int) -> int:
    """Resident bytes of a process and all its children (/proc, through psutil); 0 if gone."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += int(process.memory_info().rss)
        except psutil.Error:
            continue
    return total


# -- the two sides -------------------------------------------------------------------------


class Side:
    """One way of running the suite: start it, seed it, settle it, weigh it, stop it."""

    name = ""

    def __init__(self, work: Path, log: Callable[[str], None]) -> None:
        self.work = work / self.name
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.edge = ""

    def start(self) -> float:
        """Start everything; the seconds until the edge is ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop everything and remove what was created."""
        raise NotImplementedError

    def links(self, emails: Sequence[str]) -> dict[str, str]:
        """The verification link mailed to each address, waiting for the mails."""
        raise NotImplementedError

    def settle(self) -> None:
        """Wait until no event is in flight (outbox sent, queue empty, no delivery due)."""
        raise NotImplementedError

    def memory(self) -> dict[str, int]:
        """Bytes in use per process (bare) or container (compose service)."""
        raise NotImplementedError

    def check_alive(self) -> None:
        """An exception when a part of the suite is gone."""


class BareSide(Side):
    """The suite under gunicorn on this machine's servers, behind nginx (as `make bench`)."""

    name = "bare"

    def __init__(self, work: Path, log: Callable[[str], None]) -> None:
        super().__init__(work, log)
        self.suite = Suite(
            SuiteOptions(
                workers=2,
                threads=4,
                base_dir=self.work / "suite",
                # A shared machine under others' tests boots the suite slowly.
                start_timeout=300.0,
                extra_env=BENCH_ENV,
            )
        )
        self.nginx: Edge | None = None

    def start(self) -> float:
        began = time.monotonic()
        self.suite.start()
        self.nginx = Edge.for_suite(self.suite, self.work / "nginx")
        self.nginx.start()
        self.edge = self.nginx.url
        return time.monotonic() - began

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        self.suite.stop()

    def links(self, emails: Sequence[str]) -> dict[str, str]:
        mail = self.suite.dir / "mail"
        return {email: support.verification_link(mail, email, timeout=180) for email in emails}

    def settle(self) -> None:
        seeding.settle(self.suite)

    def memory(self) -> dict[str, int]:
        usage = {name: rss_tree(pid) for name, pid in self.suite.pids().items()}
        if self.nginx is not None and self.nginx.process is not None:
            usage["nginx"] = rss_tree(self.nginx.process.pid)
        return usage

    def check_alive(self) -> None:
        self.suite.check_alive()


class ComposeSide(Side):
    """The compose stack of the images tagged `tag`, with the benchmark's override."""

    name = "containers"

    def __init__(self, work: Path, log: Callable[[str], None], tag: str) -> None:
        super().__init__(work, log)
        override = self.work / "compose-bench.yml"
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        override.write_text(yaml.safe_dump(compose_override(compose), sort_keys=True))
        self.stack: Stack = new_stack(tag, extra_files=[str(override)], prefix="suite-bench")
        self.edge = self.stack.edge

    def start(self) -> float:
        try:
            seconds = self.stack.up()
            # The catalogue starts empty outside `make run`: the operator seeds the demo
            # products (docs/operate.md), which the benchmark's orders are priced from.
            self.stack.compose(
                "exec", "-T", "orders", "flask", "--app", "services.orders", "seed-products"
            )
        except Exception:
            self.stack.print_logs()
            raise
        return seconds

    def stop(self) -> None:
        self.stack.down()

    def links(self, emails: Sequence[str]) -> dict[str, str]:
        mail = self.work / "mail"

        def all_mailed() -> dict[str, str] | None:
            self.stack.copy_mail(mail)
            found = {email: _link_in(mail, email) for email in emails}
            return {e: link for e, link in found.items() if link} if all(found.values()) else None

        return wait_for(all_mailed, timeout=180, interval=1.0, what="the verification mails")

    def count(self, service: str, sql: str) -> int:
        """One number from a service's database, through psql in its container."""
        out = self.stack.compose(
            "exec", "-T", f"{service}-db", "psql", "-U", service, "-d", service, "-tAc", sql
        )
        return int(out.strip())

    def queued(self, consumer: str) -> int:
        """Messages in a consumer's queue, from RabbitMQ's management API."""
        env = self.stack.env
        response = requests.get(
            f"http://127.0.0.1:{env['RABBITMQ_UI_PORT']}/api/queues/%2F/{queue_name(consumer)}",
            auth=("suite", env["RABBITMQ_PASSWORD"]),
            timeout=10,
        )
        response.raise_for_status()
        return int(response.json()["messages"])

    def settle(self) -> None:
        def idle() -> bool:
            try:
                return (
                    self.count("orders", "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
                    and self.count(
                        "notifications",
                        "SELECT count(*) FROM deliveries WHERE status = 'pending'"
                        " AND next_attempt_at <= now()",
                    )
                    == 0
                    and self.queued("notifications") == 0
                )
            except (ComposeError, requests.RequestException, ValueError, KeyError):
                return False

        try:
            wait_for(idle, timeout=180, interval=1.0, what="the stack's event pipeline idle")
        except WaitTimeout as exc:
            self.log(f"warning: {exc}; going on")

    def memory(self) -> dict[str, int]:
        ids = self.stack.compose("ps", "-q").split()
        if not ids:
            return {}
        out = docker("stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", *ids)
        return parse_docker_stats(out, self.stack.project)


def _link_in(mail: Path, email: str) -> str | None:
    """The verification link to `email` among the copied mails, if it is there yet."""
    try:
        return support.verification_link(mail, email, timeout=0)
    except WaitTimeout:
        return None
