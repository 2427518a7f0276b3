"""A local SMTP server for `make run` and the tests: every message becomes a .eml file.

    python -m services.notifications.smtp_sink   # listens on SMTP_HOST:SMTP_PORT (127.0.0.1:1025)

Messages land in `<VAR_DIR>/mail/` as `<UTC time>-<random>.eml`, each written to a
temporary name first and renamed, so a reader never sees half a message. Nothing is
relayed anywhere: this is a mail catcher, not a mail server.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from aiosmtpd.controller import Controller

from shared.config import Env

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1025


class MailDirectoryHandler:
    """aiosmtpd handler that writes each accepted message to `directory` as a .eml file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message with its envelope sender and recipients as extra headers."""
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        recipients = ", ".join(envelope.rcpt_tos)
        envelope_headers = (
            f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {recipients}\r\n"
        ).encode()
        path = self.write(envelope_headers + content)
        log.info("mail to %s stored as %s", recipients, path)
        return "250 Message accepted for delivery"

    def write(self, data: bytes) -> Path:
        """Write one message atomically; its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        final = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        temporary = final.with_suffix(".tmp")
        temporary.write_bytes(data)
        os.replace(temporary, final)
        return final


def start_sink(
    directory: Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> Controller:
    """Start the sink in a background thread; call `.stop()` on the result to end it."""
    controller = Controller(MailDirectoryHandler(directory), hostname=host, port=port)
    controller.start()
    return controller


def main() -> int:
    """Run the sink until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP verb
    env = Env()
    directory = env.var_dir() / "mail"
    host = env.string("SMTP_HOST", DEFAULT_HOST)
    port = env.integer("SMTP_PORT", DEFAULT_PORT)
    controller = start_sink(directory, host=host, port=port)
    log.info("SMTP sink listening on %s:%s, writing to %s", host, port, directory)
    stop_requested = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        # Only a flag: the main loop below does the stopping, outside the signal handler.
        nonlocal stop_requested
        log.info("stop requested (%s)", signal.Signals(signum).name)
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stop_requested:
        time.sleep(0.2)
    controller.stop()
    log.info("SMTP sink stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
