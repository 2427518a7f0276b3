"""A webhook or an email has a total time limit, whatever the other side does to stretch it.

The servers here misbehave on purpose: they drip a byte or a header line at a time
(each one well inside any per-read timeout), stall a TLS handshake, or stream a huge
body. Every exchange must end at its deadline, a little later at most.
"""

from __future__ import annotations

import socket
import time

import pytest

from services.notifications import webhooks
from services.notifications.deadline import Deadline, DeadlineExceeded
from services.notifications.deliveries import DeliveryError
from services.notifications.delivery import WebhookSender
from services.notifications.mail import EmailSender
from services.notifications.ssrf import TargetGuard, UnsafeTargetError
from services.notifications.tests.conftest import MisbehavingServer, drip, drip_headers

DEADLINE = 1.0
# Generous: the point is "ends near its deadline", not how fast; a drip lasts 60 s.
LATE = 3.0


def drip_tls_handshake(server: MisbehavingServer, conn: socket.socket) -> None:
    """A TLS record header announcing a 16 KiB handshake message, then one byte every 0.2 s."""
    conn.recv(65536)  # the ClientHello
    drip(server, conn, b"\x16\x03\x03\x40\x00", b"\x00")


def drip_smtp_greeting(server: MisbehavingServer, conn: socket.socket) -> None:
    """An SMTP greeting continued over and over ("220-..."), never the final line."""
    drip(server, conn, b"220-mail.example.com\r\n", b"220-still here\r\n")


def huge_error_body(server: MisbehavingServer, conn: socket.socket) -> None:
    """A 500 with a 100 MB body, sent as fast as the client takes it."""
    conn.recv(65536)
    server.send(conn, b"HTTP/1.1 500 Oops\r\nContent-Length: 100000000\r\n\r\n")
    chunk = b"x" * 65536
    while server.sent < 100_000_000:
        server.send(conn, chunk)


def _webhook(timeout: float = DEADLINE, guard: TargetGuard | None = None) -> WebhookSender:
    return WebhookSender(guard=guard or TargetGuard(allow_private=True), timeout=timeout)


def _post(sender: WebhookSender, url: str) -> tuple[float, str]:
    """Send one webhook; (seconds it took, the DeliveryError's message)."""
    started = time.monotonic()
    with pytest.raises(DeliveryError) as failure:
        sender.send(
            delivery_id="d-1", url=url, secret=webhooks.new_webhook_secret(), body='{"a":1}'
        )
    return time.monotonic() - started, str(failure.value)


def test_a_target_dripping_header_lines_is_abandoned_at_the_deadline(misbehaving) -> None:
    server = misbehaving(drip_headers)

    took, error = _post(_webhook(), f"http://127.0.0.1:{server.port}/hook")

    assert took < DEADLINE + LATE
    assert "within 1 s" in error
    assert server.finished.wait(5)  # its connection was cut, not left hanging


def test_a_tls_handshake_dripped_a_byte_at_a_time_is_abandoned_at_the_deadline(
    misbehaving,
) -> None:
    server = misbehaving(drip_tls_handshake)

    took, error = _post(_webhook(), f"https://127.0.0.1:{server.port}/hook")

    assert took < DEADLINE + LATE
    assert "within 1 s" in error


def test_a_host_name_that_takes_long_to_resolve_is_abandoned_at_the_deadline() -> None:
    def slow_dns(host: str, port: int) -> list[str]:
        time.sleep(30)
        return ["127.0.0.1"]

    took, error = _post(
        _webhook(guard=TargetGuard(allow_private=True, resolver=slow_dns)),
        "http://hooks.example.com/hook",
    )

    assert took < DEADLINE + LATE
    # The lookup's own limit and the deadline end at the same moment; either may say so.
    assert error == f"refused: {webhooks.REFUSED_TARGET}" or "within 1 s" in error


def test_registration_waits_for_dns_no_longer_than_the_guard_allows() -> None:
    def slow_dns(host: str, port: int) -> list[str]:
        time.sleep(30)
        return ["93.184.215.14"]

    guard = TargetGuard(resolver=slow_dns, resolve_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(UnsafeTargetError, match="no DNS answer within 0.5 s"):
        guard.check_url("https://hooks.example.com/hook")
    assert time.monotonic() - started < 0.5 + LATE


def test_a_huge_error_body_is_not_read_past_a_small_prefix(misbehaving) -> None:
    server = misbehaving(huge_error_body)

    _took, error = _post(_webhook(timeout=10.0), f"http://127.0.0.1:{server.port}/hook")

    assert error.startswith("HTTP 500: xxxx")
    assert server.finished.wait(10)
    # What the kernel buffers on both ends is all that left the server: far below 100 MB.
    assert server.sent < 32_000_000


def test_an_smtp_server_that_never_finishes_its_greeting_is_abandoned_at_the_deadline(
    misbehaving,
) -> None:
    server = misbehaving(drip_smtp_greeting)
    sender = EmailSender(host="127.0.0.1", port=server.port, sender="a@x.test", timeout=DEADLINE)

    started = time.monotonic()
    with pytest.raises(DeliveryError, match="within 1 s"):
        sender.send(delivery_id="d-1", to="ada@example.com", subject="s", text="t", html="<p>h")
    assert time.monotonic() - started < DEADLINE + LATE


def test_a_deadline_that_has_passed_refuses_to_watch_a_new_socket() -> None:
    with Deadline(0.05) as deadline:
        time.sleep(0.1)
        a, b = socket.socketpair()
        try:
            with pytest.raises(DeadlineExceeded):
                deadline.remaining()
            with pytest.raises(DeadlineExceeded):
                deadline.watch(a)
            assert deadline.expired
            assert a.recv(1) == b""  # shut down: end of file at once
        finally:
            a.close()
            b.close()
