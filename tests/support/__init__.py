"""Test helpers every service's tests use: throwaway PostgreSQL databases and RabbitMQ vhosts,
free ports, waiting for an effect, real server processes, and access tokens signed like auth's.

Each test session gets its own databases and its own vhost on the real servers, so the
suites of several services (and several xdist workers) never see each other's rows or
messages. Registered as a pytest plugin by the root conftest.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import jwt
import psycopg
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("TEST_AMQP_HOST", "127.0.0.1:5672")

T = TypeVar("T")


def _admin_connection(admin_url: str = PG_ADMIN_URL) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        admin_url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True
    )


def create_database(prefix: str, admin_url: str = PG_ADMIN_URL) -> str:
    """Create an empty PostgreSQL database (on the shared server, or the one `admin_url`
    names) and return its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin_connection(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is ours, not user input
    base = admin_url.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def drop_database(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    """Drop a database made by create_database, closing whatever still uses it."""
    name = url.rsplit("/", 1)[1]
    with _admin_connection(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rabbitmqctl(*args: str, node: str | None = None) -> str:
    """Run rabbitmqctl against the shared node (or another one) and return its output."""
    cmd = ["rabbitmqctl"]
    if node:
        cmd += ["-n", node]
    result = subprocess.run([*cmd, *args], check=True, capture_output=True, text=True, timeout=60)
    return result.stdout


@dataclass(frozen=True)
class Broker:
    """Where vhosts and users are made: a rabbitmqctl for the broker and its AMQP host:port.

    The shared broker by default; the fault-injection harness passes its own cluster.
    """

    ctl: Callable[..., str]
    host: str


SHARED_BROKER = Broker(rabbitmqctl, AMQP_HOST)


def create_vhost(prefix: str = "test", broker: Broker = SHARED_BROKER) -> tuple[str, str]:
    """Create a vhost on the shared broker for guest; return (vhost, amqp_url)."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    broker.ctl("add_vhost", vhost)
    broker.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return vhost, f"amqp://guest:guest@{broker.host}/{quote(vhost, safe='')}"


def delete_vhost(vhost: str, broker: Broker = SHARED_BROKER) -> None:
    """Delete a vhost made by create_vhost (its queues and messages go with it)."""
    broker.ctl("delete_vhost", vhost)


def create_service_users(vhost: str, broker: Broker = SHARED_BROKER) -> dict[str, str]:
    """Create every service's broker user (shared.broker_users) in `vhost`; return their
    AMQP URLs by service.

    Users are global to the broker, so they are named after the vhost: `<vhost>-orders`.
    One thread per user: each rabbitmqctl call costs about a second of CLI start-up.
    """
    from concurrent.futures import ThreadPoolExecutor

    from shared.broker_users import USERS, rabbitmqctl_commands

    prefix = f"{vhost}-"
    passwords = {entry.service: uuid.uuid4().hex for entry in USERS}
    commands = rabbitmqctl_commands(vhost, passwords, prefix=prefix)
    per_user = len(commands) // len(USERS)

    def run(first: int) -> None:
        for command in commands[first : first + per_user]:
            broker.ctl(*command)

    with ThreadPoolExecutor(max_workers=len(USERS)) as pool:
        list(pool.map(run, range(0, len(commands), per_user)))
    return {
        service: f"amqp://{quote(prefix + service, safe='')}:{password}@{broker.host}/"
        f"{quote(vhost, safe='')}"
        for service, password in passwords.items()
    }


def delete_service_users(vhost: str, broker: Broker = SHARED_BROKER) -> None:
    """Delete the users create_service_users made for `vhost`."""
    from shared.broker_users import USERS

    for entry in USERS:
        broker.ctl("delete_user", f"{vhost}-{entry.service}")


# Where coverage.py's subprocess patch (pyproject: [tool.coverage.run] patch) tells a child
# Python to measure itself.
COVERAGE_CHILD_SETTING = "COVERAGE_PROCESS_CONFIG"


@contextlib.contextmanager
def unmeasured_processes() -> Iterator[None]:
    """The processes started (or given an environment) inside run without coverage.

    For the tests of the whole suite at once (e2e, `make run`, the short chaos run): a dozen
    processes that each import Flask and SQLAlchemy take twice the CPU to start and run
    when measured, and on a two-core machine that decides how long `make test` takes. The
    code they run is measured by each service's own tests, which start the same entry points.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(COVERAGE_CHILD_SETTING, raising=False)
        yield


@pytest.fixture(scope="module")
def processes_without_coverage() -> Iterator[None]:
    """unmeasured_processes() for the whole module."""
    with unmeasured_processes():
        yield


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A fresh vhost on the real RabbitMQ for this test session."""
    vhost, url = create_vhost()
    yield url
    delete_vhost(vhost)


@pytest.fixture(scope="session")
def database_factory() -> Iterator[object]:
    """Make fresh PostgreSQL databases on demand; all dropped at the end of the session."""
    made: list[str] = []

    def make(prefix: str) -> str:
        url = create_database(prefix)
        made.append(url)
        return url

    yield make
    for url in made:
        drop_database(url)


# -- ports and waiting ----------------------------------------------------------------------


class WaitTimeout(AssertionError):
    """A condition did not come true in time (a test failure; the benchmark reports it)."""


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Call `predicate` until it returns something truthy and return that; fail at the deadline.

    The predicate always gets one more call after the deadline, so a slow machine that got
    there just in time is not failed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"not within {timeout}s: {what or predicate}")
        time.sleep(interval)


# -- mail -----------------------------------------------------------------------------------

VERIFICATION_SUBJECT = "Verify your email address"
_LINK = re.compile(r"https?://\S+verify-email\?token=[\w\-]+")


def verification_link(mail_dir: Path, address: str, *, timeout: float = 30.0) -> str:
    """The link of the verification mail to `address` in a mail sink's directory, waiting.

    What a user does with the mail: tests and the benchmark verify their users this way,
    through the mail the suite sends, never through a shortcut into auth.
    """

    def find() -> str | None:
        for path in sorted(mail_dir.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=email_policy.default)
            if message["To"] != address or message["Subject"] != VERIFICATION_SUBJECT:
                continue
            body = message.get_body(("plain",))
            match = _LINK.search(body.get_content() if body is not None else "")
            if match:
                return match.group(0)
        return None

    return wait_for(find, timeout=timeout, interval=0.1, what=f"verification mail to {address}")


# -- server processes -----------------------------------------------------------------------


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    start_new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a process with its stdout and stderr going to `log`."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=start_new_session,
        )


def gunicorn_command(
    app: str, *, port: int, workers: int, threads: int | None = None, options: Sequence[str] = ()
) -> list[str]:
    """argv of gunicorn serving `app` on 127.0.0.1:`port` with the suite's production settings."""
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:shared.gunicorn_conf"]
    argv += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    return [*argv, *options, app]


def log_tail(log: Path, chars: int = 3000) -> str:
    """The end of a process's log, for failure messages."""
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, *, timeout: float
) -> None:
    """Poll `url`/healthz until it answers 200; fail with the end of `log` if `process` exits
    first or the deadline passes."""

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"{url}: the process exited with {process.returncode}")
        try:
            return requests.get(f"{url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False  # not listening yet, or no worker has booted to take the connection

    try:
        wait_for(answers, timeout=timeout, interval=0.1, what=f"{url}/healthz answering 200")
    except (WaitTimeout, pytest.fail.Exception) as failure:
        pytest.fail(f"{failure}\n{log_tail(log)}")


def stop_processes(
    processes: Iterable[subprocess.Popen[bytes]], *, timeout: float = 15.0
) -> list[int]:
    """SIGTERM every process still running, then reap each; return their exit codes.

    One still running `timeout` seconds into its wait gets SIGKILL, with its whole process
    group when it leads one (gunicorn started with `start_new_session`), so no worker lingers.
    """
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait(timeout=timeout)
    return [int(process.returncode) for process in processes]


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 15.0) -> int:
    """SIGTERM a process and return its exit code; SIGKILL it if it takes over `timeout` s."""
    (returncode,) = stop_processes([process], timeout=timeout)
    return returncode


# -- access tokens ---------------------------------------------------------------------------


def rsa_private_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA key, the kind auth signs access tokens with."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_jwk(private_key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The public JWK of `private_key` as auth publishes it in its JWKS."""
    public = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**public, "kid": kid, "use": "sig", "alg": "RS256"}


def access_token_claims(*, issuer: str, audience: str, **overrides: Any) -> dict[str, Any]:
    """The claims of a 15-minute access token of "user-1"; an override of None drops that claim."""
    # A token issued in the past (an `iat` override) still lives 15 minutes from its issue.
    issued_at = overrides.get("iat") or int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": "user-1",
        "iat": issued_at,
        "exp": issued_at + 900,
        "jti": uuid.uuid4().hex,
        "roles": ["user"],
        **overrides,
    }
    return {name: value for name, value in claims.items() if value is not None}


def sign_access_token(
    claims: Mapping[str, Any],
    private_key: rsa.RSAPrivateKey,
    *,
    kid: str,
    typ: str | None = "at+jwt",
) -> str:
    """`claims` signed RS256 with the `kid` and `typ` headers auth sets (typ None: no typ)."""
    return jwt.encode(
        dict(claims), private_key, algorithm="RS256", headers={"kid": kid, "typ": typ}
    )


def unsigned_token(claims: Mapping[str, Any], *, kid: str) -> str:
    """The `alg: none` forgery: an access token's header and claims with no signature."""
    header = {"alg": "none", "typ": "at+jwt", "kid": kid}
    return f"{_segment(header)}.{_segment(claims)}."


def key_confusion_token(
    claims: Mapping[str, Any], private_key: rsa.RSAPrivateKey, *, kid: str
) -> str:
    """The key-confusion forgery: `claims` signed HS256 with the RSA public key's PEM as secret.

    Signed by hand: PyJWT itself refuses to use a PEM key as an HMAC secret.
    """
    secret = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{_segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _segment(obj: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(obj, separators=(",", ":")).encode())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- a second, disposable RabbitMQ node for outage tests ------------------------------------

RABBITMQ_SBIN = os.environ.get("TEST_RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin")


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
        import pika.exceptions

        deadline = time.monotonic() + timeout
        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.socket_timeout = 2
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.nodename} exited:\n{self.log_tail()}")
            try:
                pika.BlockingConnection(params).close()
                return
            except pika.exceptions.AMQPConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"RabbitMQ node {self.nodename} not accepting after {timeout}s:\n"
                        f"{self.log_tail()}"
                    ) from None
                time.sleep(0.25)

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


def schema_drift(app: Any, db: Any) -> list[Any]:
    """What Alembic's autogenerate would change to make the app's migrated database match
    its models (types compared too); empty when the migrations build the models' schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, db.metadata))
