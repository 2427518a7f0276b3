"""Mail: our notifications as MIME messages, and the SMTP client that sends them.

`MessageTemplate` writes the common case of our mails out cheaply; `EmailSender` keeps
one SMTP connection per delivery thread, each send bounded as a whole. The delivery loop
(`delivery`) calls `EmailSender.send` for every claimed email.
"""

from __future__ import annotations

import base64
import io
import re
import smtplib
import socket
import ssl
import threading
import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr
from typing import Any

from services.notifications.deliveries import DeliveryError


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
