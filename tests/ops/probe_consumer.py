"""A consumer process like the services' workers, for the graceful-shutdown test.

    python probe_consumer.py AMQP_URL JOURNAL

Consumes `ops.probe` events with shared.messaging.Consumer. Its handler is slow on purpose
and appends `start <id>` / `done <id>` lines to JOURNAL, so the test can tell whether a
message was handled, and how often. SIGTERM stops it the way the workers do: a flag, the
message in hand still finishes and is acked.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from shared.events import Event
from shared.messaging import Consumer

CONSUMER = "ops-probe"
ROUTING_KEY = "ops.probe"
DELIVERY_LIMIT = 5
RETRY_DELAYS = (1.0,)


def journal_line(path: str, line: str) -> None:
    """Append one line and push it to disk before going on (the test reads it live)."""
    with open(path, "a") as journal:
        journal.write(line + "\n")
        journal.flush()
        os.fsync(journal.fileno())


def main(argv: list[str]) -> int:
    """Consume until SIGTERM."""
    amqp_url, journal = argv
    seconds = float(os.environ.get("PROBE_HANDLER_SECONDS", "1.0"))

    def handle(event: Event) -> None:
        journal_line(journal, f"start {event.id}")
        time.sleep(seconds)
        journal_line(journal, f"done {event.id}")

    consumer = Consumer(
        amqp_url,
        CONSUMER,
        [ROUTING_KEY],
        handle,
        delivery_limit=DELIVERY_LIMIT,
        retry_delays=RETRY_DELAYS,
    )

    def stop(_signum: int, _frame: FrameType | None) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, stop)
    consumer.run()
    journal_line(journal, "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
