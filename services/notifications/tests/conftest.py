"""Fixtures of the notifications tests: the real PostgreSQL, a real SMTP sink, a real HTTP receiver.

Integration tests share one PostgreSQL database per session, migrated once with the real
migrations and truncated before each test. Tokens are signed with a key made here and
checked by a verifier swapped into the app. Backoff and polling are tiny so that retry
stories play out in fractions of a second.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from services.notifications import create_app
from services.notifications.delivery import DeliverySettings, deliver_due_once, delivery_settings
from services.notifications.handlers import CONSUMER, HANDLERS
from services.notifications.models import Inbox, db
from services.notifications.smtp_sink import start_sink
from shared import contracts
from shared.config import Env
from shared.events import Event
from shared.inbox import inbox_handler
from shared.tokens import StaticKeySource, TokenVerifier
from shared.uow import unit_of_work
from tests.support import (
    access_token_claims,
    free_port,
    rsa_jwk,
    rsa_private_key,
    sign_access_token,
)

ISSUER = "https://auth.test/api/v1/auth"
AUDIENCE = "suite-test"
KID = "test-key"
TABLES = (
    "webhook_attempts",
    "deliveries",
    "notifications",
    "webhook_endpoints",
    "contacts",
    "inbox",
)
FAST = {
    "NOTIFICATIONS_BACKOFF_BASE_SECONDS": 0.01,
    "NOTIFICATIONS_BACKOFF_CAP_SECONDS": 0.05,
    "NOTIFICATIONS_DELIVERY_POLL_SECONDS": 0.02,
    "NOTIFICATIONS_MAX_ATTEMPTS": 5,
    "SMTP_TIMEOUT_SECONDS": 2.0,
    "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS": 2.0,
}


# -- tokens ---------------------------------------------------------------------------------


class TokenMaker:
    """Signs access tokens the way auth does, with a key only the tests know."""

    def __init__(self) -> None:
        self.private_key = rsa_private_key()
        self.jwks = {"keys": [rsa_jwk(self.private_key, KID)]}

    def verifier(self) -> TokenVerifier:
        """A verifier that trusts this maker's key."""
        return TokenVerifier(StaticKeySource(self.jwks), issuer=ISSUER, audience=AUDIENCE)

    def token(self, user_id: str, roles: tuple[str, ...] = ("user",)) -> str:
        """A valid access token for `user_id`."""
        claims = access_token_claims(
            issuer=ISSUER, audience=AUDIENCE, sub=user_id, roles=list(roles)
        )
        return sign_access_token(claims, self.private_key, kid=KID)

    def headers(self, user_id: str) -> dict[str, str]:
        """An Authorization header for `user_id`."""
        return {"Authorization": f"Bearer {self.token(user_id)}"}


@pytest.fixture(scope="session")
def tokens() -> TokenMaker:
    """The session's token signer."""
    return TokenMaker()


# -- the app on PostgreSQL ----------------------------------------------------------------


def make_app(database_url: str, var_dir: Path, verifier: TokenVerifier, **config: Any) -> Flask:
    """A notifications app for tests on `database_url`, trusting `verifier`'s key."""
    env = Env(
        {
            "APP_ENV": "test",
            "NOTIFICATIONS_DATABASE_URL": database_url,
            "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "VAR_DIR": str(var_dir),
        }
    )
    app = create_app({"TESTING": True, **FAST, **config}, env=env)
    app.extensions["token_verifier"] = verifier
    return app


def truncate(app: Flask) -> None:
    """Empty every table of the notifications database."""
    with app.app_context():
        db.session.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
        db.session.commit()


@pytest.fixture(scope="session")
def pg_app_session(
    database_factory: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    tokens: TokenMaker,
) -> Iterator[Flask]:
    """The session's app on PostgreSQL, migrated once by the real migrations."""
    app = make_app(
        database_factory("notifications_test"),
        tmp_path_factory.mktemp("notifications-var"),
        tokens.verifier(),
    )
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(pg_app_session: Flask) -> Flask:
    """The PostgreSQL app with empty tables."""
    truncate(pg_app_session)
    return pg_app_session


@pytest.fixture
def sqlite_app(tmp_path: Path, tokens: TokenMaker) -> Iterator[Flask]:
    """An app on a fresh SQLite file (the `make run` set-up), migrated by the real migrations."""
    app = make_app(f"sqlite:///{tmp_path / 'notifications.db'}", tmp_path, tokens.verifier())
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


def committed(use_case: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a use case as an entry point does: in its own transaction, committed on success."""
    with unit_of_work(kwargs["session"]):
        return use_case(**kwargs)


def purged_in_batches(
    purge: Callable[..., int], session: Any, *, older_than: Any, limit: int, runs: int = 4
) -> list[int]:
    """How many rows each of `runs` committed runs of a purge use case deleted, in order."""
    return [
        committed(purge, session=session, older_than=older_than, limit=limit) for _ in range(runs)
    ]


# -- events ---------------------------------------------------------------------------------


def user_registered(
    user_id: str, email_address: str = "ada@example.com", name: str = "Ada", version: int = 1
) -> Event:
    """A user.registered event as auth publishes it."""
    return contracts.build(
        contracts.UserRegisteredV1(user_id=user_id, email=email_address, name=name, version=version)
    )


def user_profile_changed(user_id: str, email_address: str, name: str, version: int) -> Event:
    """A user.profile_changed event as auth publishes it."""
    return contracts.build(
        contracts.UserProfileChangedV1(
            user_id=user_id, email=email_address, name=name, version=version
        )
    )


def user_email_verified(user_id: str, version: int = 2) -> Event:
    """A user.email_verified event: the owner followed the link mailed at registration."""
    return contracts.build(contracts.UserEmailVerifiedV1(user_id=user_id, version=version))


def user_verification_requested(
    user_id: str, email_address: str = "ada@example.com", name: str = "Ada"
) -> Event:
    """A user.verification_requested event as auth publishes it at registration."""
    return contracts.build(
        contracts.UserVerificationRequestedV1(
            user_id=user_id,
            email=email_address,
            name=name,
            verify_url="http://127.0.0.1:8080/api/v1/auth/verify-email?token=tok-" + user_id,
            expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        )
    )


def user_registration_attempted(user_id: str) -> Event:
    """A user.registration_attempted event: someone tried to register a taken address."""
    return contracts.build(contracts.UserRegistrationAttemptedV1(user_id=user_id))


def user_deactivated(user_id: str, version: int = 2) -> Event:
    """A user.deactivated event as auth publishes it."""
    return contracts.build(contracts.UserDeactivatedV1(user_id=user_id, version=version))


def user_reactivated(user_id: str, version: int) -> Event:
    """A user.reactivated event as auth publishes it."""
    return contracts.build(contracts.UserReactivatedV1(user_id=user_id, version=version))


def order_created(user_id: str, order_id: str | None = None, total_cents: int = 2500) -> Event:
    """An order.created event as orders publishes it."""
    return contracts.build(
        contracts.OrderCreatedV1(
            order_id=order_id or str(uuid.uuid4()),
            user_id=user_id,
            status="pending",
            total_cents=total_cents,
            currency="EUR",
            items=[contracts.OrderItemV1(sku="BOOK-1", quantity=1, unit_price_cents=total_cents)],
            version=1,
        )
    )


def order_status_changed(user_id: str, order_id: str, old: str, new: str) -> Event:
    """An order.status_changed event as orders publishes it."""
    return contracts.build(
        contracts.OrderStatusChangedV1(
            order_id=order_id, user_id=user_id, from_=old, to=new, version=2
        )
    )


@pytest.fixture
def consume(app: Flask) -> Callable[[Event], None]:
    """Apply an event exactly as the consumer does (inbox + handler, one transaction)."""
    return inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)


# -- delivery -------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """The real aiosmtpd sink on a free port, writing .eml files to `directory`."""

    directory: Path
    port: int = field(default_factory=free_port)
    controller: Any = None

    def start(self) -> None:
        """Start listening (again)."""
        self.controller = start_sink(self.directory, port=self.port)

    def stop(self) -> None:
        """Stop listening; connections are refused until start()."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, oldest first."""
        paths = sorted(self.directory.glob("*.eml")) if self.directory.exists() else []
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in paths
        ]


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    """A running SMTP sink for this test."""
    sink = SmtpSink(tmp_path / "mail")
    sink.start()
    yield sink
    sink.stop()


@dataclass
class ReceivedRequest:
    """One request the webhook receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers per path."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        # path -> (status, headers); anything else gets 204.
        self.responses: dict[str, tuple[int, dict[str, str]]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(
                    ReceivedRequest(self.path, dict(self.headers.items()), body)
                )
                status, headers = receiver.responses.get(self.path, (204, {}))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        """The URL of `path` on this receiver."""
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running webhook receiver for this test."""
    receiver = WebhookReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


# -- servers that misbehave on purpose ------------------------------------------------------


Behaviour = Callable[["MisbehavingServer", socket.socket], None]


class MisbehavingServer:
    """A TCP server on 127.0.0.1 that answers every connection with `behaviour(self, conn)`."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sent = 0
        self.finished = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.behaviour(self, conn)
        except OSError:
            pass  # the client hung up: what these tests want
        finally:
            conn.close()
            self.finished.set()

    def send(self, conn: socket.socket, data: bytes) -> None:
        """Send `data`, counting what the client let through."""
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        """Stop accepting."""
        self.listener.close()


def drip(server: MisbehavingServer, conn: socket.socket, first: bytes, piece: bytes) -> None:
    """Send `first`, then `piece` every 0.2 s for a minute."""
    server.send(conn, first)
    for _ in range(300):  # 60 s of one piece every 0.2 s
        time.sleep(0.2)
        server.send(conn, piece)


def drip_headers(server: MisbehavingServer, conn: socket.socket) -> None:
    """A 200 status line, then one more header line every 0.2 s, never the blank line."""
    conn.recv(65536)
    drip(server, conn, b"HTTP/1.1 200 OK\r\n", b"X-Drip: 1\r\n")


@pytest.fixture
def misbehaving() -> Iterator[Callable[[Behaviour], MisbehavingServer]]:
    """Start misbehaving servers: misbehaving(drip_headers) -> a running server."""
    servers: list[MisbehavingServer] = []

    def start(behaviour: Behaviour) -> MisbehavingServer:
        server = MisbehavingServer(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def resolver_of(answers: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    """A fake DNS for the SSRF guard: host -> addresses; unknown hosts do not resolve."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(f"unknown host {host}")
        return list(answers[host])

    return resolve


def settings_for(app: Flask, smtp_port: int | None = None, **config: Any) -> DeliverySettings:
    """The delivery loop's settings from the app's config, pointed at the test servers."""
    merged = {**app.config, **config}
    if smtp_port is not None:
        merged["SMTP_PORT"] = smtp_port
    return delivery_settings(merged)


def deliver(app: Flask, settings: DeliverySettings) -> int:
    """One pass of the delivery worker; the number of deliveries it claimed."""
    with app.app_context():
        return deliver_due_once(db.session(), settings)


def now_utc() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)
