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
from collections import Counter
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


# -- SQL round trips ------------------------------------------------------------------------


@contextlib.contextmanager
def counting_statements(*engines: Any) -> Iterator[Counter[str]]:
    """Count what the engines send to the database meanwhile, by first word (SELECT,
    INSERT, ...), plus COMMIT and ROLLBACK; `.total()` is all of them. Counted as
    SQLAlchemy hands each statement to the driver (`before_cursor_execute`): each is a
    round trip (BEGIN, which psycopg sends by itself, is not seen)."""
    import sqlalchemy as sa

    counts: Counter[str] = Counter()

    def statement(_conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        counts[text.lstrip().split(None, 1)[0].upper()] += 1

    def commit(_conn: Any) -> None:
        counts["COMMIT"] += 1

    def rollback(_conn: Any) -> None:
        counts["ROLLBACK"] += 1

    listeners = (("before_cursor_execute", statement), ("commit", commit), ("rollback", rollback))
    for engine in engines:
        for name, listener in listeners:
            sa.event.listen(engine, name, listener)
    try:
        yield counts
    finally:
        for engine in engines:
            for name, listener in listeners:
                sa.event.remove(engine, name, listener)


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


def schema_drift(app: Any, db: Any) -> list[Any]:
    """What Alembic's autogenerate would change to make the app's migrated database match
    its models (types compared too); empty when the migrations build the models' schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, db.metadata))
