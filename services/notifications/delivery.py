"""Sending: email over SMTP, signed webhooks over HTTP, and the loop that drives them.

The loop never holds a transaction across the network: it claims due deliveries (one
attempt each, a lease keeps other workers off them) and commits; before each send it
renews the lease and checks that nobody claimed the delivery since (so one claim sends
at most once, however long the batch takes); it sends under a deadline shorter than the
lease, then records the result in a transaction of its own. A crash after a send but
before its record sends that message again once the lease runs out; the email's
Message-ID and the webhook's `webhook-id` are the delivery id, so a receiver can tell
it is the same one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import logging
import re
import smtplib
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr
from typing import Any, Protocol

import requests
from prometheus_client import Counter
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from services.notifications import services
from services.notifications.deadline import Deadline
from services.notifications.models import Channel
from services.notifications.services import DeliveryJob, RetryPolicy
from services.notifications.ssrf import GuardedAdapter, TargetGuard, UnsafeTargetError
from services.notifications.webhooks import REFUSED_TARGET
from shared.backoff import jittered_delay
from shared.context import child_traceparent, correlation
from shared.db import utcnow
from shared.faults import DELIVERY_AFTER_SEND, crash_point
from shared.uow import unit_of_work

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = Counter(
    "notification_delivery_attempts",
    "Delivery attempts by channel and outcome.",
    ["channel", "outcome"],
)
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "flask-suite-webhooks/1.0"


class DeliveryError(Exception):
    """A send did not go through; the message (stored as last_error) says why."""


# -- email ------------------------------------------------------------------------------


def build_email(
    *, delivery_id: str, sender: str, to: str, subject: str, text: str, html: str
) -> EmailMessage:
    """A multipart/alternative message whose Message-ID is derived from the delivery id."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "notifications.invalid"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{delivery_id}@{domain}>"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


# Header values the fast path writes as they are: printable ASCII, short enough to need no
# folding (RFC 5322 2.1.1). Anything else goes through the email package.
_PLAIN_HEADER = re.compile(r"[\x20-\x7e]{0,900}")
_FOLD_AT = 78
# One plain address (no display name, no list): what the envelope and the header both say.
_PLAIN_ADDRESS = re.compile(r"[\x21-\x7e]{1,254}")
_NOT_IN_PLAIN_ADDRESS = frozenset('<>()[]\\,;:"')


class MessageTemplate:
    """Builds the wire form of our mails cheaply, the email package's way for the rest.

    The email package (EmailMessage, then its generator) costs about a millisecond of CPU
    per message, half of all a send costs; our mails are all alike (one sender, one
    address, a short subject, a text and an HTML part), so the common case is written out
    here with a fixed layout instead: the same headers, a multipart/alternative body, each
    part 7bit when it is short-lined ASCII and base64 otherwise. A subject or address the
    layout does not cover (non-ASCII, long, line breaks) is left to `build_email`, which
    encodes and folds it (and refuses line breaks) as it always did.
    """

    def __init__(self, sender: str) -> None:
        self.sender = sender
        self.envelope_from = parseaddr(sender)[1]
        self.domain = self.envelope_from.rpartition("@")[2] or "notifications.invalid"
        # The From header once, folded and encoded by the email package as it would be.
        probe = EmailMessage()
        probe["From"] = sender
        self._from_line = probe.as_bytes(policy=SMTP_POLICY).split(b"\r\n\r\n")[0] + b"\r\n"

    def wire(
        self, *, delivery_id: str, to: str, subject: str, text: str, html: str
    ) -> tuple[str, bytes | EmailMessage]:
        """The envelope sender and the message: bytes ready for DATA, or an EmailMessage."""
        if (
            len(subject) + len("Subject: ") > _FOLD_AT
            or not _PLAIN_ADDRESS.fullmatch(to)
            or to.count("@") != 1
            or not _NOT_IN_PLAIN_ADDRESS.isdisjoint(to)
            or not _PLAIN_HEADER.fullmatch(subject)
            or not _PLAIN_HEADER.fullmatch(delivery_id)
        ):
            return self.envelope_from, build_email(
                delivery_id=delivery_id,
                sender=self.sender,
                to=to,
                subject=subject,
                text=text,
                html=html,
            )
        boundary = f"=={uuid.uuid4().hex}=="  # random: no part can contain it by accident
        head = (
            f"To: {to}\r\nSubject: {subject}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\n"
            f"Message-ID: <{delivery_id}@{self.domain}>\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
            "\r\n"
            f"--{boundary}\r\n"
        ).encode("ascii")
        return self.envelope_from, b"".join(
            (
                self._from_line,
                head,
                _part("plain", text),
                f"\r\n--{boundary}\r\n".encode("ascii"),
                _part("html", html),
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )
        )


_LINE_END = re.compile(r"\r\n|\r|\n")
_SHORT_ASCII_LINES = re.compile(r"(?:[\x20-\x7e\t]{0,998}\n)*[\x20-\x7e\t]{0,998}")


def _part(subtype: str, content: str) -> bytes:
    """One text part with its headers: 7bit if it can be, else base64 of its UTF-8."""
    # Text travels in canonical form (RFC 2045 2.7): CRLF line ends, the last line ended.
    if _SHORT_ASCII_LINES.fullmatch(content):
        body = content.replace("\n", "\r\n").encode("ascii")
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        encoding = "7bit"
    else:
        canonical = _LINE_END.sub("\r\n", content)
        if not canonical.endswith("\r\n"):
            canonical += "\r\n"
        body = base64.encodebytes(canonical.encode("utf-8")).replace(b"\n", b"\r\n")
        encoding = "base64"
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode("ascii") + body


class _TimedReader(io.RawIOBase):
    """The SMTP client's reads, each with a socket timeout of the time its send has left."""

    def __init__(self, smtp: _ReusableSMTP) -> None:
        self.smtp = smtp

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        sock = self.smtp.sock
        if sock is None:
            raise OSError("not connected")
        sock.settimeout(self.smtp.time_left())
        try:
            return int(sock.recv_into(buffer))
        except TimeoutError:
            self.smtp.timed_out = True
            raise


class SendTimeout(socket.timeout):
    """The send ran out of its time: the connection is dropped, the delivery retried."""


class _ReusableSMTP(smtplib.SMTP):
    """smtplib's client, kept open across sends, every read and write bounded by the send.

    smtplib's own timeout bounds each socket operation: a server that answers one
    continuation line ("250-...") a second would hold a send forever. Here each read and
    write gets a socket timeout of what is left of the current send's time (`ends_at`),
    so the whole exchange is bounded without a watchdog thread per send. Every write of
    smtplib goes through `send`, every read through `getreply` (which reads `self.file`);
    shared.overrides registers both with the versions they were read against.
    """

    def __init__(self, *, timeout: float) -> None:
        self.ends_at = time.monotonic() + timeout
        self.replies = 0  # answers read since the current send began
        self.timed_out = False
        super().__init__(timeout=timeout)  # no host: nothing is connected yet

    def begin(self, seconds: float) -> None:
        """Start a send that may take `seconds` from now."""
        self.ends_at = time.monotonic() + seconds
        self.replies = 0
        self.timed_out = False

    def time_left(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0:
            self.timed_out = True
            raise SendTimeout("no time left for this send")
        return left

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> Any:
        self.timeout = self.time_left()  # what smtplib gives the connecting socket
        return super().connect(host, port, source_address)

    def send(self, s: Any) -> None:
        if self.sock is not None:
            try:
                self.sock.settimeout(self.time_left())
            except SendTimeout:
                self.close()
                raise smtplib.SMTPServerDisconnected("no time left for this send") from None
        try:
            super().send(s)
        except smtplib.SMTPServerDisconnected:
            # sendall's timeout bounds the whole write: past it, this send ran out of time.
            self.timed_out = self.timed_out or time.monotonic() >= self.ends_at
            raise

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            # After connect and after STARTTLS (which resets `file`): reads of the current
            # socket, timed as above, instead of smtplib's sock.makefile().
            self.file = io.BufferedReader(_TimedReader(self))  # type: ignore[assignment]
        reply = super().getreply()
        self.replies += 1
        return reply


class EmailSender:
    """Sends mail over one SMTP connection per delivery thread, reconnecting when it breaks.

    `timeout` bounds each send as a whole: connecting when there is no open connection,
    to the server's answer to the message. The connection is kept for the next send; the
    loop closes it when it runs out of work (`close`). A send that fails on a connection
    kept from an earlier one before the server answered anything (it closed the
    connection meanwhile) is tried once more on a new connection: nothing of it had been
    accepted, so this cannot deliver twice. Any later failure is the delivery's, retried
    by the loop as before (and possibly delivered twice, under one Message-ID, when the
    server had taken the message but its answer was lost).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        timeout: float = 10.0,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
    ) -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout
        self.username, self.password, self.starttls = username, password, starttls
        self.template = MessageTemplate(sender)
        self._local = threading.local()  # each delivery loop its own connection

    def send(self, *, delivery_id: str, to: str, subject: str, text: str, html: str) -> None:
        """Send one email; DeliveryError when the server cannot be reached or refuses it."""
        envelope_from, message = self.template.wire(
            delivery_id=delivery_id, to=to, subject=subject, text=text, html=html
        )
        smtp: _ReusableSMTP | None = getattr(self._local, "smtp", None)
        kept = smtp is not None
        try:
            try:
                self._transact(smtp, envelope_from, to, message)
            except smtplib.SMTPServerDisconnected:
                smtp = getattr(self._local, "smtp", None)
                if not kept or smtp is None or smtp.replies or smtp.timed_out:
                    raise
                # The kept connection was gone before the server said anything to this
                # send: the server closed it meanwhile. Once more, on a new one.
                self.close()
                self._transact(None, envelope_from, to, message)
        except (smtplib.SMTPException, OSError) as exc:
            smtp = getattr(self._local, "smtp", None)
            timed_out = isinstance(exc, SendTimeout) or bool(smtp and smtp.timed_out)
            if not isinstance(exc, smtplib.SMTPResponseException) or exc.smtp_code == 421:
                self.close()  # in an unknown state, or closing: not for the next send
            if timed_out:
                raise DeliveryError(
                    f"SMTP {self.host}:{self.port}: no complete answer within "
                    f"{self.timeout:g} s; abandoned"
                ) from exc
            raise DeliveryError(
                f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}"
            ) from exc

    def _transact(
        self,
        smtp: _ReusableSMTP | None,
        envelope_from: str,
        to: str,
        message: bytes | EmailMessage,
    ) -> None:
        if smtp is None or smtp.sock is None:
            smtp = self._local.smtp = _ReusableSMTP(timeout=self.timeout)
            smtp.begin(self.timeout)
            smtp.connect(self.host, self.port)
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username and self.password:
                smtp.login(self.username, self.password)
        else:
            smtp.begin(self.timeout)
        if isinstance(message, EmailMessage):
            smtp.send_message(message)  # SMTPUTF8 for an address beyond ASCII, when offered
        else:
            smtp.sendmail(envelope_from, [to], message)

    def close(self) -> None:
        """Say goodbye on this thread's connection, if it has one (quickly, errors ignored)."""
        smtp: _ReusableSMTP | None = getattr(self._local, "smtp", None)
        self._local.smtp = None
        if smtp is None:
            return
        try:
            if smtp.sock is not None and not smtp.timed_out:
                smtp.begin(min(self.timeout, 1.0))
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            smtp.close()


# -- webhooks ---------------------------------------------------------------------------


def sign_webhook(*, secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`webhook-signature` per Standard Webhooks: v1,base64(HMAC-SHA256(key, id.ts.body))."""
    # Signed here in a few lines rather than with the `standardwebhooks` package, which the
    # tests use instead, as an independent implementation that must accept our signatures.
    key = base64.b64decode(secret.removeprefix(services.SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookSender:
    """POSTs signed webhooks: no redirects, bounded time and response size, SSRF-guarded."""

    def __init__(
        self,
        *,
        guard: TargetGuard,
        timeout: float = 5.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.guard = guard
        # The whole delivery's limit: DNS, connect, TLS, sending, status line and headers.
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.clock = clock

    def send(self, *, delivery_id: str, url: str, secret: str, body: str) -> None:
        """POST one webhook; DeliveryError for a refused target, a timeout or a non-2xx."""
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_webhook(
                secret=secret, msg_id=delivery_id, timestamp=timestamp, body=body
            ),
        }
        with Deadline(self.timeout) as deadline:
            try:
                self._post(url, body.encode(), headers, deadline)
            except DeliveryError as exc:
                if deadline.expired:
                    raise DeliveryError(self._too_slow()) from exc
                raise
            if deadline.expired:
                # The watchdog cut the connection: what looked like an answer may be a
                # truncated one (an end of file also ends the headers).
                raise DeliveryError(self._too_slow())

    def _too_slow(self) -> str:
        return f"webhook gave no complete answer within {self.timeout:g} s; abandoned"

    def _post(self, url: str, data: bytes, headers: dict[str, str], deadline: Deadline) -> None:
        # A session per delivery: every socket of this POST is then one opened under this
        # deadline (a pooled keep-alive connection would not be watched), and nothing is
        # shared between delivery threads.
        with requests.Session() as session:
            # No proxy from the environment: the guard must see the address really connected to.
            session.trust_env = False
            adapter = GuardedAdapter(self.guard, deadline=deadline)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            try:
                self.guard.split_url(url)  # the scheme rule; the address rule runs at connect
                response = session.post(
                    url,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except UnsafeTargetError as exc:
                # The reason names hosts and addresses, and last_error is shown to the
                # endpoint's owner: the detail goes to our log only.
                log.warning("webhook target refused at delivery", extra={"reason": str(exc)})
                raise DeliveryError(f"refused: {REFUSED_TARGET}") from exc
            except requests.RequestException as exc:
                raise DeliveryError(f"webhook request failed: {type(exc).__name__}: {exc}") from exc
            try:
                self._check_answer(response)
            finally:
                response.close()

    def _check_answer(self, response: requests.Response) -> None:
        try:
            status = response.status_code
            if 200 <= status < 300:
                return
            if 300 <= status < 400:
                location = response.headers.get("Location", "")[:200]
                raise DeliveryError(f"HTTP {status} redirect to {location!r} (not followed)")
            # Only a bounded prefix of the body is read: the target cannot make us buffer more.
            snippet = response.raw.read(self.max_response_bytes, decode_content=False)
            text = snippet[:200].decode("utf-8", "replace")
            raise DeliveryError(f"HTTP {status}: {text}")
        except (Urllib3HTTPError, OSError) as exc:
            raise DeliveryError(f"reading the response failed: {exc}") from exc


# -- the delivery loop ------------------------------------------------------------------


class EmailSending(Protocol):
    """What the loop needs to send an email (EmailSender, or a fake)."""

    def send(self, *, delivery_id: str, to: str, subject: str, text: str, html: str) -> None: ...


class WebhookSending(Protocol):
    """What the loop needs to send a webhook (WebhookSender, or a fake)."""

    def send(self, *, delivery_id: str, url: str, secret: str, body: str) -> None: ...


@dataclass
class DeliverySettings:
    """The delivery loop's dependencies and knobs, built from config by `delivery_settings`."""

    email: EmailSending
    webhook: WebhookSending
    policy: RetryPolicy
    batch_size: int = 10
    lease_seconds: float = 120.0
    poll_seconds: float = 1.0


def delivery_settings(config: Any) -> DeliverySettings:
    """DeliverySettings from a Flask config."""
    return DeliverySettings(
        email=EmailSender(
            host=config["SMTP_HOST"],
            port=int(config["SMTP_PORT"]),
            sender=config["SMTP_FROM"],
            timeout=float(config["SMTP_TIMEOUT_SECONDS"]),
            username=config.get("SMTP_USERNAME"),
            password=config.get("SMTP_PASSWORD"),
            starttls=bool(config.get("SMTP_STARTTLS")),
        ),
        webhook=WebhookSender(
            guard=TargetGuard(allow_private=bool(config["NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE"])),
            timeout=float(config["NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS"]),
        ),
        policy=RetryPolicy(
            max_attempts=int(config["NOTIFICATIONS_MAX_ATTEMPTS"]),
            base_seconds=float(config["NOTIFICATIONS_BACKOFF_BASE_SECONDS"]),
            cap_seconds=float(config["NOTIFICATIONS_BACKOFF_CAP_SECONDS"]),
        ),
        batch_size=int(config["NOTIFICATIONS_DELIVERY_BATCH_SIZE"]),
        lease_seconds=float(config["NOTIFICATIONS_DELIVERY_LEASE_SECONDS"]),
        poll_seconds=float(config["NOTIFICATIONS_DELIVERY_POLL_SECONDS"]),
    )


def send_job(job: DeliveryJob, settings: DeliverySettings) -> None:
    """Send one claimed delivery on its channel; DeliveryError when it did not go through."""
    payload = job.payload
    if job.channel == Channel.EMAIL:
        if not job.email:
            raise DeliveryError("no email address is known for this user yet")
        settings.email.send(
            delivery_id=str(job.id),
            to=job.email,
            subject=payload["subject"],
            text=payload["text"],
            html=payload["html"],
        )
    elif job.channel == Channel.WEBHOOK:
        assert job.url is not None and job.secret is not None  # claim cancels orphans
        settings.webhook.send(
            delivery_id=str(job.id), url=job.url, secret=job.secret, body=payload["body"]
        )
    else:
        raise DeliveryError(f"unknown channel {job.channel!r}")


def deliver_due_once(
    session: Session, settings: DeliverySettings, *, now: Callable[[], datetime] = utcnow
) -> int:
    """Claim due deliveries, send them, record each outcome; the number claimed."""
    # Each step is its own committed transaction: none stays open while a message is on
    # the network, and the claim is visible to the other workers before anything is sent.
    with unit_of_work(session):
        jobs = services.claim_due_deliveries(
            session=session,
            now=now(),
            limit=settings.batch_size,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.policy.max_attempts,
        )
    for job in jobs:
        # The log lines of this send carry the request and trace of the event behind it
        # (a span of its own within that trace).
        traceparent = child_traceparent(job.traceparent) if job.traceparent else None
        with correlation(job.request_id, traceparent):
            _deliver_one(session, job, settings, now)
    if len(jobs) < settings.batch_size:
        # Less than a full batch: nothing more is due now, the loop goes idle.
        _release_connections(settings)
    return len(jobs)


def _deliver_one(
    session: Session, job: DeliveryJob, settings: DeliverySettings, now: Callable[[], datetime]
) -> None:
    extra = {"delivery_id": str(job.id), "channel": job.channel, "attempt": job.attempt}
    # The batch was claimed at once, and the sends before this one took time: another
    # worker may have claimed it meanwhile, or the user or endpoint may be gone.
    with unit_of_work(session):
        ours = services.renew_claim(
            session=session, job=job, now=now(), lease_seconds=settings.lease_seconds
        )
    if not ours:
        DELIVERY_ATTEMPTS.labels(job.channel, "skipped").inc()
        return
    try:
        send_job(job, settings)
    except DeliveryError as exc:
        error = str(exc)
    except Exception as exc:
        # A bug with one message must not stop the others; it is retried and recorded.
        log.exception("unexpected error while sending", extra=extra)
        error = f"unexpected error: {type(exc).__name__}: {exc}"
    else:
        # Sent, not yet recorded: a crash here sends again once the lease runs out, under
        # the same delivery id, which receivers dedupe by.
        crash_point(DELIVERY_AFTER_SEND)
        with unit_of_work(session):
            services.record_delivery_sent(session=session, job=job, now=now())
        DELIVERY_ATTEMPTS.labels(job.channel, "sent").inc()
        log.info("delivery sent", extra=extra)
        return
    with unit_of_work(session):
        status = services.record_delivery_failed(
            session=session, job=job, error=error, now=now(), policy=settings.policy
        )
    DELIVERY_ATTEMPTS.labels(job.channel, "failed" if status == "failed" else "retry").inc()
    log.warning("delivery attempt failed", extra={**extra, "error": error, "status": status})


def run_delivery_loop(
    session_factory: Callable[..., Session],
    settings: DeliverySettings,
    stop_event: threading.Event,
    *,
    max_db_backoff: float = 30.0,
) -> None:
    """Deliver until `stop_event` is set; idle `poll_seconds` when nothing is due."""
    try:
        _run_delivery_loop(session_factory, settings, stop_event, max_db_backoff)
    finally:
        _release_connections(settings)


def _release_connections(settings: DeliverySettings) -> None:
    # This thread's SMTP connection (EmailSender keeps one per loop) is not held open
    # while there is nothing to send.
    close = getattr(settings.email, "close", None)
    if close is not None:
        close()


def _run_delivery_loop(
    session_factory: Callable[..., Session],
    settings: DeliverySettings,
    stop_event: threading.Event,
    max_db_backoff: float,
) -> None:
    failures = 0
    while not stop_event.is_set():
        session = session_factory()
        connection: Connection | None = None
        try:
            # One pooled connection for the whole pass (its transactions stay as they
            # were, each committed on its own): a checkout, with its ping, per pass rather
            # than one per transaction, three of which each mail takes.
            bind = session.get_bind()
            if isinstance(bind, Engine):
                connection = bind.connect()
                session.close()
                session = session_factory(bind=connection)
            claimed = deliver_due_once(session, settings)
            failures = 0
        except SQLAlchemyError as exc:
            # The database went away: back off and try again, the rows are still there.
            with contextlib.suppress(SQLAlchemyError):
                session.rollback()
            failures += 1
            delay = jittered_delay(failures, base=2 * settings.poll_seconds, cap=max_db_backoff)
            log.warning(
                "delivery loop: database error", extra={"error": str(exc), "retry_in": delay}
            )
            stop_event.wait(delay)
            continue
        finally:
            session.close()
            if connection is not None:
                with contextlib.suppress(SQLAlchemyError):
                    connection.close()
        if claimed < settings.batch_size:
            stop_event.wait(settings.poll_seconds)
