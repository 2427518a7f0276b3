"""Disposable servers for the tests that break one: a second RabbitMQ node, a PostgreSQL
server and a Redis server of their own, on free ports, started and removed by the test (or
by `make chaos`), so that the shared servers are never stopped. Registered as a pytest
plugin by the root conftest, beside tests.support.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, log_tail, spawn, stop_process, wait_for

# -- a second, disposable RabbitMQ node for outage tests ------------------------------------

RABBITMQ_SBIN = os.environ.get("TEST_RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin")


def wait_until_amqp_accepts(
    params: Any,
    process: subprocess.Popen[bytes] | None,
    name: str,
    log_tail: Callable[[], str],
    timeout: float,
) -> None:
    """Poll until an AMQP connection with `params` opens; fail with the node's log when its
    `process` exits or `timeout` seconds pass first."""
    import pika
    import pika.exceptions

    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log_tail()}")
        try:
            pika.BlockingConnection(params).close()
            return
        except pika.exceptions.AMQPError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} not accepting after {timeout}s:\n{log_tail()}"
                ) from None
            time.sleep(0.25)


class RabbitNode:
    """A throwaway RabbitMQ node of its own (name, ports, data, cookie) that tests may break.

    The shared broker must never be stopped, so outage tests start this one. Its whole
    environment is given explicitly and RABBITMQ_CONF_ENV_FILE points at an empty file:
    the system rabbitmq-env.conf would otherwise impose the shared node's NODENAME.
    `stop_app` keeps the Erlang node but closes the AMQP listener and every connection,
    which is what clients see in an outage; `start_app` brings the broker back.
    """

    def __init__(self, base_dir: str) -> None:
        import secrets

        self.base_dir = base_dir
        self.port = free_port()
        dist_port = free_port()
        self.nodename = f"chaos-{uuid.uuid4().hex[:8]}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self._process: subprocess.Popen[bytes] | None = None
        join = os.path.join
        with open(join(base_dir, "rabbitmq-env.conf"), "w"):
            pass
        with open(join(base_dir, "rabbitmq.conf"), "w") as conf:
            conf.write(f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n")
            conf.write("log.console = false\nlog.file.level = warning\n")
        with open(join(base_dir, "enabled_plugins"), "w") as plugins:
            plugins.write("[].\n")
        cookie = join(base_dir, ".erlang.cookie")
        with open(cookie, "w") as handle:
            handle.write(secrets.token_hex(16))
        os.chmod(cookie, 0o400)
        self.env = {
            **os.environ,
            "HOME": base_dir,  # the CLI and the node read the cookie from $HOME
            "RABBITMQ_CONF_ENV_FILE": join(base_dir, "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": join(base_dir, "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": join(base_dir, "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": join(base_dir, "mnesia"),
            "RABBITMQ_LOG_BASE": join(base_dir, "log"),
            "RABBITMQ_PID_FILE": join(base_dir, "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, timeout: float = 90.0) -> None:
        """Boot the node and wait until it accepts AMQP connections."""
        server = os.path.join(RABBITMQ_SBIN, "rabbitmq-server")
        if not os.path.exists(server):
            # The outage tests are must-shows: a missing broker is a failure, not a skip.
            pytest.fail(f"no rabbitmq-server under {RABBITMQ_SBIN}; install rabbitmq-server")
        with open(os.path.join(self.base_dir, "server.log"), "wb") as out:
            self._process = subprocess.Popen(
                [server],
                env=self.env,
                cwd=self.base_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one if need be
            )
        self.wait_until_accepting(timeout)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run rabbitmqctl against this node."""
        result = subprocess.run(
            [os.path.join(RABBITMQ_SBIN, "rabbitmqctl"), "-n", self.nodename, *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return result.stdout

    def wait_until_accepting(self, timeout: float = 60.0) -> None:
        """Poll until an AMQP connection opens (or fail with the node's log)."""
        import pika

        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.socket_timeout = 2
        wait_until_amqp_accepts(
            params, self._process, f"RabbitMQ node {self.nodename}", self.log_tail, timeout
        )

    def stop_app(self) -> None:
        """Simulate an outage: stop the broker application (listener and connections go)."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """End the outage and wait until AMQP is accepted again."""
        self.ctl("start_app")
        self.wait_until_accepting()

    def stop(self) -> None:
        """Shut the node down for good; kill its process group if it does not go quietly."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                self.ctl("shutdown", timeout=30)
            except (subprocess.SubprocessError, OSError):
                pass
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
        # epmd lingers (it is shared with the main node) and forgets us on its own.

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the node's console output, for failure messages."""
        try:
            with open(os.path.join(self.base_dir, "server.log"), errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="module")
def second_rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A private RabbitMQ node for this test module, always shut down (and its data removed)."""
    import shutil

    base = tmp_path_factory.mktemp("rabbit-node")
    node = RabbitNode(str(base))
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- a disposable PostgreSQL server and Redis server for outage tests -------------------------


def _newest_postgres_bin() -> str:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return str(found[-1].parent) if found else ""


class PostgresNode:
    """A throwaway PostgreSQL server (its own data directory, socket and port) to stop at will.

    The shared server must never be stopped, so outage tests start this one. initdb and
    postgres refuse to run as root: as root, every command runs as the `postgres` user
    (runuser), in a directory of its own under the system temp directory (pytest's tmp_path
    is private to root). `stop` is a fast shutdown, which drops every client connection and
    closes the port; `start` again serves the same data on the same port.
    """

    def __init__(self, *, synchronous_commit: bool = False) -> None:
        import tempfile

        # Off by default (test data, faster). A server that is killed must keep it on: with
        # it off, a commit already acknowledged can be lost with the server's WAL buffers.
        self.synchronous_commit = synchronous_commit
        self.bin_dir = os.environ.get("TEST_PG_BIN") or _newest_postgres_bin()
        if not self.bin_dir or not os.path.exists(os.path.join(self.bin_dir, "pg_ctl")):
            # Outage tests are must-shows: a missing server is a failure, not a skip.
            pytest.fail("no PostgreSQL server binaries (pg_ctl); install postgresql")
        self.base_dir = tempfile.mkdtemp(prefix="pg-node-")
        self.data_dir = os.path.join(self.base_dir, "data")
        self.log_path = os.path.join(self.base_dir, "server.log")
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            import pwd

            owner = pwd.getpwnam("postgres")
            os.chown(self.base_dir, owner.pw_uid, owner.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self.running = False

    def _run(self, tool: str, *args: str, timeout: float = 90.0) -> None:
        argv = [*self._as_postgres, os.path.join(self.bin_dir, tool), *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr}\n{self.log_tail()}"
            )

    def init(self) -> None:
        """Create the cluster: trust authentication, user postgres, no fsync (test data)."""
        self._run("initdb", "-D", self.data_dir, "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self, timeout: float = 60.0) -> None:
        """Start serving on 127.0.0.1:port and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base_dir} "
            "-c fsync=off -c full_page_writes=off"
            f" -c synchronous_commit={'on' if self.synchronous_commit else 'off'}"
        )
        self._run(
            "pg_ctl",
            *("-D", self.data_dir, "-l", self.log_path, "-o", options),
            *("-w", "-t", str(int(timeout)), "start"),
            timeout=timeout + 30,
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Shut the server down (the outage); clients lose their connections at once."""
        self._run("pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "stop")
        self.running = False

    def _server_pids(self) -> list[int]:
        """The postmaster first, then every process it forked (backends, background workers)."""
        with open(os.path.join(self.data_dir, "postmaster.pid")) as pid_file:
            postmaster = int(pid_file.readline())
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The command may hold spaces and parentheses: the ppid follows the last ')'.
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP the whole server: its port stays open and its kernel acknowledges, but
        nothing answers (a blackholed database, not a refusing one)."""
        for pid in self._server_pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped."""
        for pid in self._server_pids():
            os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        """Stop the server if it runs and remove its files."""
        import shutil

        if self.running:
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.SubprocessError, OSError):
                pass
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log, for failure messages."""
        try:
            with open(self.log_path, errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresNode]:
    """A private PostgreSQL server for this test module, always stopped and removed after."""
    node = PostgresNode()
    try:
        node.init()
        node.start()
        yield node
    finally:
        node.destroy()


class RedisNode:
    """A throwaway redis-server on a port of its own (nothing persisted) to stop at will."""

    def __init__(self, base_dir: str | Path) -> None:
        self.base_dir = Path(base_dir)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = self.base_dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers PING."""
        import shutil

        import redis

        server = os.environ.get("TEST_REDIS_SERVER") or shutil.which("redis-server")
        if not server:
            pytest.fail("no redis-server on PATH; install redis-server")
        argv = [server, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.base_dir)]
        self._process = spawn(argv, log=self.log_path)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            if self._process is not None and self._process.poll() is not None:
                pytest.fail(f"redis-server exited:\n{log_tail(self.log_path)}")
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_for(answers, timeout=timeout, interval=0.05, what="redis-server answering")
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL the server (no shutdown at all); `start` serves again on the same port."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(timeout=15)

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open and nothing answers them."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (the outage): its port closes, clients lose their connections."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisNode]:
    """A private redis-server for one test, always stopped after."""
    node = RedisNode(tmp_path)
    node.start()
    try:
        yield node
    finally:
        node.stop()
