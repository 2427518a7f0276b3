"""Mail over a kept SMTP connection: against the real aiosmtpd sink and misbehaving servers."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask import Flask

from services.notifications.deliveries import DeliveryError
from services.notifications.mail import EmailSender, MessageTemplate, build_email
from services.notifications.models import Delivery, db
from services.notifications.smtp_sink import MailDirectoryHandler
from services.notifications.tests.conftest import (
    MisbehavingServer,
    deliver,
    settings_for,
    user_email_verified,
    user_registered,
)
from shared.events import Event
from tests.support import free_port

pytestmark = pytest.mark.integration

SENDER = "Flask Suite <no-reply@flask-suite.local>"


class CountingSink(MailDirectoryHandler):
    """The project's sink handler, also noting the connection each message came on.

    With `drop_after`, it hangs up on the client after that many messages on a connection
    (each one answered 250 first), as a server closing a connection it thinks idle would.
    """

    def __init__(self, directory: Path, drop_after: int | None = None) -> None:
        super().__init__(directory)
        self.drop_after = drop_after
        self.peers: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        self.peers.append(session.peer)
        if self.drop_after and self.peers.count(session.peer) == self.drop_after:
            # After the answer has gone out.
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
        return answer

    def connections(self) -> int:
        return len(set(self.peers))

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in sorted(self.directory.glob("*.eml"))
        ]


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Callable[..., tuple[CountingSink, int]]]:
    controllers: list[Controller] = []

    def start(drop_after: int | None = None) -> tuple[CountingSink, int]:
        handler = CountingSink(tmp_path / f"mail-{len(controllers)}", drop_after)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


def _send(sender: EmailSender, n: int, *, text: str = "Hello,\n.\nbye\n") -> None:
    sender.send(
        delivery_id=f"delivery-{n}",
        to=f"user{n}@example.com",
        subject=f"Message {n}",
        text=text,
        html=f"<p>{n}</p>",
    )


def test_a_batch_of_deliveries_goes_out_over_one_connection(
    app: Flask, consume: Callable[[Event], None], sink: Callable[..., tuple[CountingSink, int]]
) -> None:
    handler, port = sink()
    for n in range(8):
        consume(user_registered(f"user-{n}", f"user{n}@example.com", f"User {n}"))
        consume(user_email_verified(f"user-{n}"))

    assert deliver(app, settings_for(app, port)) == 8

    with app.app_context():
        statuses = db.session.scalars(sa.select(Delivery.status)).all()
    assert statuses == ["sent"] * 8
    assert sorted(m["To"] for m in handler.messages()) == sorted(
        f"user{n}@example.com" for n in range(8)
    )
    assert handler.connections() == 1


def test_many_mails_share_one_connection_and_arrive_intact(
    sink: Callable[..., tuple[CountingSink, int]],
) -> None:
    handler, port = sink()
    sender = EmailSender(host="127.0.0.1", port=port, sender=SENDER, timeout=5.0)
    try:
        for n in range(40):
            _send(sender, n)
    finally:
        sender.close()

    messages = handler.messages()
    assert len(messages) == 40
    assert handler.connections() == 1
    first = next(m for m in messages if m["To"] == "user0@example.com")
    assert first["Message-ID"] == "<delivery-0@flask-suite.local>"
    # Stored as it came off the wire: CRLF line ends. The lone dot survives.
    assert _body(first, "plain") == "Hello,\r\n.\r\nbye\r\n"
    assert _body(first, "html") == "<p>0</p>\r\n"


def test_when_the_server_hangs_up_mid_batch_the_sender_reconnects_and_sends_the_rest_once(
    sink: Callable[..., tuple[CountingSink, int]],
) -> None:
    handler, port = sink(drop_after=3)
    sender = EmailSender(host="127.0.0.1", port=port, sender=SENDER, timeout=5.0)
    try:
        for n in range(10):
            _send(sender, n)
            if n % 3 == 2:
                time.sleep(0.3)  # the hang-up arrives between two sends
    finally:
        sender.close()

    recipients = sorted(m["To"] for m in handler.messages())
    assert recipients == sorted(f"user{n}@example.com" for n in range(10))  # each once
    assert handler.connections() == 4  # 3 + 3 + 3 + 1


def _smtp_until(
    stall_at: bytes, nth: int = 1
) -> Callable[[MisbehavingServer, socket.socket], None]:
    """A minimal SMTP server that goes silent the `nth` time the client sends `stall_at`."""

    def behave(server: MisbehavingServer, conn: socket.socket) -> None:
        server.send(conn, b"220 ready\r\n")
        reader = conn.makefile("rb")
        in_data = False
        seen = 0
        while line := reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    server.send(conn, b"250 accepted\r\n")
                continue
            if line.upper().startswith(stall_at):
                seen += 1
                if seen == nth:
                    # One continuation line every 0.2 s, never the last one.
                    for _ in range(300):
                        server.send(conn, b"250-still thinking\r\n")
                        time.sleep(0.2)
                    return
            if line.upper().startswith(b"DATA"):
                in_data = True
                server.send(conn, b"354 go ahead\r\n")
            else:
                server.send(conn, b"250 ok\r\n")

    return behave


def test_a_stalling_server_costs_one_bounded_send_and_the_delivery_is_retried(
    app: Flask,
    consume: Callable[[Event], None],
    misbehaving: Callable[[Any], MisbehavingServer],
) -> None:
    server = misbehaving(_smtp_until(b"DATA"))
    consume(user_registered("user-ada", "ada@example.com"))
    consume(user_email_verified("user-ada"))
    settings = settings_for(app, server.port, SMTP_TIMEOUT_SECONDS=1.0)

    started = time.monotonic()
    deliver(app, settings)
    took = time.monotonic() - started

    with app.app_context():
        [delivery] = db.session.scalars(sa.select(Delivery))
    assert took < 1.0 + 3.0  # the limit and some slack, not the minute of dripping
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "no complete answer within 1 s" in (delivery.last_error or "")
    assert delivery.next_attempt_at is not None


def test_a_kept_connection_that_stalls_costs_one_bounded_send_then_a_new_one_is_used(
    misbehaving: Callable[[Any], MisbehavingServer],
    sink: Callable[..., tuple[CountingSink, int]],
) -> None:
    # The first mail goes through; on the second, the server stops answering at MAIL.
    server = misbehaving(_smtp_until(b"MAIL", nth=2))
    sender = EmailSender(host="127.0.0.1", port=server.port, sender=SENDER, timeout=1.0)
    _send(sender, 0)

    started = time.monotonic()
    with pytest.raises(DeliveryError, match="no complete answer within 1 s"):
        _send(sender, 1)
    # One limit, not a second try on a new connection after it (the server may be busy
    # with that very message).
    assert time.monotonic() - started < 1.0 + 0.8

    handler, port = sink()
    sender.port = port
    _send(sender, 2)  # the stalled connection was dropped: this one is new
    sender.close()
    assert [m["To"] for m in handler.messages()] == ["user2@example.com"]


def test_a_server_that_is_gone_is_a_delivery_error_naming_it() -> None:
    port = free_port()
    sender = EmailSender(host="127.0.0.1", port=port, sender=SENDER, timeout=1.0)
    with pytest.raises(DeliveryError, match=f"SMTP 127.0.0.1:{port}"):
        _send(sender, 0)


# -- the message itself -----------------------------------------------------------------


def _parsed(message: bytes | EmailMessage) -> EmailMessage:
    data = message if isinstance(message, bytes) else message.as_bytes(policy=email.policy.SMTP)
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def _body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None, f"no {kind} part"
    return str(part.get_content())


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("Hello Ada,\n\nYour order.\n", "<p>Hello Ada,</p>"),
        ("Grüße, Zoë — 25,00 €\n", "<p>Grüße</p>"),
        ("x" * 2000, "<p>" + "y" * 1500 + "</p>"),  # longer than a line may be
        ("no newline at the end", "<p>\r\n</p>"),
        ("..leading dots\n.\n", ""),
    ],
)
def test_the_fast_layout_reads_back_as_the_email_package_would_write_it(
    text: str, html: str
) -> None:
    template = MessageTemplate(SENDER)
    fields = {
        "delivery_id": "0b9e",
        "to": "ada@example.com",
        "subject": "We received your order 0b9e",
        "text": text,
        "html": html,
    }
    envelope_from, fast = template.wire(**fields)
    assert isinstance(fast, bytes)
    reference = _parsed(build_email(sender=SENDER, **fields))
    ours = _parsed(fast)

    assert envelope_from == "no-reply@flask-suite.local"
    for name in ("From", "To", "Subject", "Message-ID", "MIME-Version"):
        assert ours[name] == reference[name]
    assert ours.get_content_type() == "multipart/alternative"
    for kind in ("plain", "html"):
        # Both as the receiving end reads them, line ends as the wire had them.
        assert _lf(_body(ours, kind)) == _lf(_body(reference, kind))
    assert all(len(line) <= 998 for line in fast.split(b"\r\n"))
    assert b"\n" not in fast.replace(b"\r\n", b"")  # only CRLF line ends


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("ada@example.com", "Bestellung für Zoë"),  # non-ASCII subject: encoded words
        ("ada@example.com", "A subject long enough that it has to be folded " * 3),
        ("zoë@exämple.com", "Welcome"),  # an internationalised address
        ("Ada <ada@example.com>", "Welcome"),  # not one plain address
    ],
)
def test_what_the_fast_layout_does_not_cover_is_left_to_the_email_package(
    to: str, subject: str
) -> None:
    _, message = MessageTemplate(SENDER).wire(
        delivery_id="0b9e", to=to, subject=subject, text="Hi", html="<p>Hi</p>"
    )
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == subject


def test_a_line_break_in_a_subject_never_reaches_the_wire() -> None:
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        MessageTemplate(SENDER).wire(
            delivery_id="0b9e",
            to="ada@example.com",
            subject="Hi\r\nBcc: eve@example.com",
            text="Hi",
            html="<p>Hi</p>",
        )
