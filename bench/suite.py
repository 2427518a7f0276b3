"""Start the whole suite as deployed, on this machine, for benchmarks (and end-to-end tests).

Every process is real: auth, orders, notifications and the gateway under gunicorn, with
their relays, consumers, the delivery worker, the SMTP sink and the gateway's revocation
worker. Each service gets a fresh PostgreSQL database, all of them a fresh vhost on the
shared RabbitMQ and a Redis key prefix of their own; the signing key lives in a temporary
directory. `stop()` ends every process and drops what was created.

    with Suite(SuiteOptions(workers=2, threads=4)) as suite:
        suite.url("gateway", "/api/v1/orders")
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pika.exceptions
import requests

from shared.gunicorn_worker import WORKER_CLASS
from shared.messaging import queue_name
from tests import support

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("auth", "orders", "notifications")
WEB_APPS = {
    "auth": "services.auth.wsgi:app",
    "orders": "services.orders.wsgi:app",
    "notifications": "services.notifications.wsgi:app",
    "gateway": "gateway.wsgi:app",
}
# Background processes besides gunicorn, by process name.
WORKERS: dict[str, tuple[str, list[str]]] = {
    "auth.relay": ("auth", ["-m", "services.auth.worker", "relay"]),
    "orders.relay": ("orders", ["-m", "services.orders.worker", "relay"]),
    "orders.consume": ("orders", ["-m", "services.orders.worker", "consume"]),
    "notifications.consume": ("notifications", ["-m", "services.notifications.worker", "consume"]),
    "notifications.deliver": ("notifications", ["-m", "services.notifications.worker", "deliver"]),
    "notifications.smtp": ("notifications", ["-m", "services.notifications.smtp_sink"]),
    "gateway.worker": ("gateway", ["-m", "gateway.worker"]),
}
# The consumers whose queues must exist before anything publishes: the relays publish with
# `mandatory`, and an event nobody is bound for yet is retried with backoff, not delivered.
CONSUMER_PROCESSES = {
    "orders": "orders.consume",
    "notifications": "notifications.consume",
    "gateway": "gateway.worker",
}
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


class SuiteError(RuntimeError):
    """A process did not start, or a preparation step failed."""


def gunicorn_argv(app: str, port: int, *, workers: int, threads: int) -> list[str]:
    """gunicorn with the suite's shared config, as deployed, on a loopback port."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:shared.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        WORKER_CLASS,
        "--threads",
        str(threads),
        app,
    ]


@dataclass
class SuiteOptions:
    """How to run the suite."""

    workers: int = 2
    threads: int = 4
    # The per-request JSON access line is part of what a deployment pays; keep INFO.
    log_level: str = "INFO"
    # Process names from WORKERS to start (all by default).
    workers_to_start: tuple[str, ...] = tuple(WORKERS)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # Where logs, keys and mail go; a fresh temporary directory when None.
    base_dir: Path | None = None
    # The broker the vhost and users are made on (the fault harness passes its cluster).
    broker: support.Broker = support.SHARED_BROKER
    # How long every process may take to become healthy (a loaded machine boots slowly).
    start_timeout: float = 60.0
    # The PostgreSQL server each service's database is made on, as an admin URL (service
    # name -> URL); the shared server for a service not named. The fault harness passes
    # servers of its own, which it may restart and freeze.
    database_admin_urls: Mapping[str, str] = field(default_factory=dict)
    # The Redis the gateway uses (the fault harness passes one of its own, to kill).
    redis_url: str = REDIS_URL


@dataclass
class Process:
    """One running process of the suite."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path


class Suite:
    """The running suite: URLs, database URLs, the environment, and every process."""

    def __init__(self, options: SuiteOptions | None = None) -> None:
        self.options = options or SuiteOptions()
        self._own_dir = self.options.base_dir is None
        self.dir = self.options.base_dir or Path(tempfile.mkdtemp(prefix="suite-"))
        self.logs = self.dir / "logs"
        self.ports = {name: support.free_port() for name in (*SERVICES, "gateway")}
        self.database_urls: dict[str, str] = {}
        self.amqp_url = ""  # guest's: for whoever drives the suite
        # Each service's processes connect as its own broker user, as deployed.
        self.service_amqp_urls: dict[str, str] = {}
        self.vhost = ""
        self.redis_prefix = f"suite-{uuid.uuid4().hex[:8]}"
        self.processes: dict[str, Process] = {}
        self.env: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Suite:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Suite:
        """Create databases and the vhost, migrate, start every process, wait until healthy."""
        try:
            self._prepare()
            for name in (*SERVICES, "gateway"):
                self.start_web(name)
            for name in self.options.workers_to_start:
                self.start_worker(name)
            for name in (*SERVICES, "gateway"):
                support.wait_for(
                    functools.partial(self._healthy, self.url(name, "/healthz")),
                    timeout=self.options.start_timeout,
                    what=f"{name} healthy ({self.logs / (name + '.log')})",
                )
            for consumer, process in CONSUMER_PROCESSES.items():
                if process not in self.options.workers_to_start:
                    continue
                support.wait_for(
                    functools.partial(queue_exists, self.amqp_url, queue_name(consumer)),
                    timeout=self.options.start_timeout,
                    what=f"queue {queue_name(consumer)} declared",
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End every process, then drop the databases, the vhost and the Redis keys."""
        self.stop_processes(list(self.processes))
        for name, url in self.database_urls.items():
            admin = self.options.database_admin_urls.get(name, support.PG_ADMIN_URL)
            _quietly(support.drop_database, url, admin)
        self.database_urls = {}
        if self.service_amqp_urls:
            _quietly(support.delete_service_users, self.vhost, self.options.broker)
            self.service_amqp_urls = {}
        if self.vhost:
            _quietly(support.delete_vhost, self.vhost, self.options.broker)
            self.vhost = ""
        _quietly(self._delete_redis_keys)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- processes -------------------------------------------------------------------------

    def start_web(self, name: str, **env: str) -> Process:
        """Start a service (or the gateway) under gunicorn on its port."""
        argv = gunicorn_argv(
            WEB_APPS[name],
            self.ports[name],
            workers=self.options.workers,
            threads=self.options.threads,
        )
        return self.spawn(name, argv, {"SERVICE_NAME": name, **env})

    def start_worker(self, name: str, **env: str) -> Process:
        """Start one background process by name (`orders.relay`, ...)."""
        service, args = WORKERS[name]
        return self.spawn(name, [sys.executable, *args], {"SERVICE_NAME": service, **env})

    def spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Process:
        """Start a process in the suite's environment (plus `env`); its output goes to a log."""
        if name in self.processes and self.processes[name].popen.poll() is None:
            raise SuiteError(f"{name} is already running")
        log = self.logs / f"{name}.log"
        own_user = self.service_amqp_urls.get((env or {}).get("SERVICE_NAME", ""))
        with log.open("ab") as out:  # the child keeps its own descriptor
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**self.env, **({"AMQP_URL": own_user} if own_user else {}), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes[name] = process
        return process

    def stop_processes(self, names: Iterable[str], timeout: float = 20.0) -> None:
        """SIGTERM the named processes, wait for them, SIGKILL whatever does not stop."""
        chosen = [self.processes.pop(n) for n in list(names) if n in self.processes]
        for process in chosen:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in chosen:
            try:
                process.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()

    def pids(self) -> dict[str, int]:
        """The pid of every running process, by name (gunicorn: the master's)."""
        return {n: p.popen.pid for n, p in self.processes.items() if p.popen.poll() is None}

    def check_alive(self) -> None:
        """SuiteError naming any process that exited."""
        dead = [n for n, p in self.processes.items() if p.popen.poll() is not None]
        if dead:
            raise SuiteError(f"processes exited: {', '.join(dead)} (logs in {self.logs})")

    def url(self, name: str, path: str = "") -> str:
        """Absolute URL of a path on a service or the gateway."""
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    # -- preparation -----------------------------------------------------------------------

    def _prepare(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.dir / "keys").mkdir(exist_ok=True)
        admins = self.options.database_admin_urls
        self.database_urls = {
            name: support.create_database(f"suite_{name}", admins.get(name, support.PG_ADMIN_URL))
            for name in SERVICES
        }
        broker = self.options.broker
        self.vhost, self.amqp_url = support.create_vhost("suite", broker)
        self.service_amqp_urls = support.create_service_users(self.vhost, broker)
        urls = {name: self.url(name) for name in (*SERVICES, "gateway")}
        self.env = {
            **os.environ,
            "APP_ENV": "test",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": self.options.log_level,
            "AMQP_URL": self.amqp_url,
            "REDIS_URL": self.options.redis_url,
            "JWT_ISSUER": f"{urls['gateway']}/api/v1/auth",
            "JWT_AUDIENCE": "flask-suite",
            "JWKS_URL": f"{urls['auth']}/api/v1/auth/jwks.json",
            "AUTH_URL": urls["auth"],
            "ORDERS_URL": urls["orders"],
            "NOTIFICATIONS_URL": urls["notifications"],
            "AUTH_SIGNING_KEYS_DIR": str(self.dir / "keys"),
            "GATEWAY_REDIS_PREFIX": self.redis_prefix,
            # Everything reaches the services through one proxy hop (the gateway or nginx),
            # on loopback: its X-Forwarded-For is believed from there only.
            "TRUSTED_PROXY_HOPS": "1",
            "TRUSTED_PROXIES": "127.0.0.1,::1",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(support.free_port()),
            "VAR_DIR": str(self.dir),
            **{f"{n.upper()}_DATABASE_URL": url for n, url in self.database_urls.items()},
            **{f"{n.upper()}_PORT": str(port) for n, port in self.ports.items()},
            **self.options.extra_env,
        }
        flask = [sys.executable, "-m", "flask", "--app"]
        self._run_steps(
            {
                "auth": [*flask, "services.auth", "prepare"],
                "orders": [*flask, "services.orders", "db", "upgrade"],
                "notifications": [*flask, "services.notifications", "db", "upgrade"],
            }
        )
        # Orders are priced from the catalogue: the demo products are what the benchmarks
        # (and anyone trying the suite) order.
        self._run_steps({"orders-catalogue": [*flask, "services.orders", "seed-products"]})

    def _run_steps(self, steps: Mapping[str, list[str]]) -> None:
        """Run preparation commands side by side and wait for all; SuiteError if one fails."""
        running = {name: self.spawn(f"prepare-{name}", argv) for name, argv in steps.items()}
        for name, process in running.items():
            if process.popen.wait(timeout=max(120.0, self.options.start_timeout)) != 0:
                raise SuiteError(f"preparing {name} failed:\n{process.log.read_text()[-3000:]}")
            self.processes.pop(process.name, None)

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _delete_redis_keys(self) -> None:
        import redis

        client = redis.Redis.from_url(self.options.redis_url, socket_connect_timeout=2)
        try:
            keys = list(client.scan_iter(f"{self.redis_prefix}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def queue_exists(amqp_url: str, queue: str) -> bool:
    """True when the queue is declared on the broker (a passive declare succeeds)."""
    try:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    except pika.exceptions.AMQPError:
        return False
    try:
        connection.channel().queue_declare(queue=queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def _quietly(action: Callable[..., object], *args: object) -> None:
    # Clean-up goes on past a failed step: one leftover must not leave the others behind.
    try:
        action(*args)
    except Exception as exc:
        sys.stderr.write(f"clean-up: {action.__name__} failed: {exc}\n")
