"""Mails per CPU-second of the sending side: EmailSender against the aiosmtpd sink.

    python -m bench.mail                 # 2,000 mails
    python -m bench.mail --mails 5000
    python -m bench.mail --loop          # the delivery loop on PostgreSQL, claims included

The sink runs in a process of its own (python -m services.notifications.smtp_sink), so
the CPU time measured here (this process's user + system seconds, every thread counted,
timer threads included) is the sender's alone: building each message, the SMTP dialogue,
connecting. CPU time rather than wall time, because the machine is shared: a busy
neighbour makes the run slower but barely changes what each mail costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.inprocess import notifications_app, smtp_sink
from services.notifications.mail import EmailSender
from tests.support import counting_statements

TEXT = "Hello Ada,\n\nWe received your order 1234abcd for 25.00 EUR.\n\nThank you.\n" * 3
HTML = "<p>Hello Ada,</p><p>We received your order <b>1234abcd</b> for 25.00 EUR.</p>" * 3


def run(mails: int) -> dict[str, float]:
    """Send `mails` mails through one EmailSender; CPU seconds and mails per CPU-second."""
    with tempfile.TemporaryDirectory() as var_dir, smtp_sink(var_dir) as port:
        sender = EmailSender(
            host="127.0.0.1",
            port=port,
            sender="Flask Suite <no-reply@flask-suite.local>",
            timeout=10.0,
        )
        # A few to warm up (imports, the first connection), not measured.
        for i in range(20):
            sender.send(
                delivery_id=f"warm-{i}",
                to="ada@example.com",
                subject="Warm",
                text=TEXT,
                html=HTML,
            )
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(mails):
            sender.send(
                delivery_id=f"bench-{i}",
                to="ada@example.com",
                subject=f"We received your order {i:08x}",
                text=TEXT,
                html=HTML,
            )
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        close = getattr(sender, "close", None)
        if close is not None:
            close()
        stored = _wait_stored(Path(var_dir) / "mail", mails + 20)
    return {
        "mails": mails,
        "stored": stored,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "mails_per_cpu_second": mails / cpu,
        "cpu_ms_per_mail": 1000 * cpu / mails,
    }


def _wait_stored(directory: Path, expected: int, timeout: float = 30.0) -> int:
    ends = time.monotonic() + timeout
    count = 0
    while time.monotonic() < ends:
        count = len(list(directory.glob("*.eml"))) if directory.exists() else 0
        if count >= expected:
            break
        time.sleep(0.1)
    return count


def _count_sent(sessions: Any) -> int:
    import sqlalchemy as sa

    session = sessions()
    try:
        return int(session.scalar(sa.text("SELECT count(*) FROM deliveries WHERE status = 'sent'")))
    finally:
        session.close()


def run_loop(mails: int) -> dict[str, float]:
    """The delivery worker's loop as deployed: claim, renew, send, record, on PostgreSQL.

    `mails` order mails are made due first (by the consumer's own handler, not measured),
    then one `run_delivery_loop` thread sends them all. The CPU measured is this
    process's: the loop with its SQL round trips (and a count of the sent ones four times
    a second), not PostgreSQL's nor the sink's.
    """
    from sqlalchemy.orm import sessionmaker

    from services.notifications.delivery import delivery_settings, run_delivery_loop
    from services.notifications.handlers import CONSUMER, HANDLERS
    from services.notifications.models import Inbox, db
    from services.notifications.tests.conftest import (
        order_created,
        user_email_verified,
        user_registered,
    )
    from shared.inbox import inbox_handler

    with (
        tempfile.TemporaryDirectory() as var_dir,
        smtp_sink(var_dir) as port,
        notifications_app(
            var_dir, config={"NOTIFICATIONS_DELIVERY_BATCH_SIZE": 10}, SMTP_PORT=str(port)
        ) as app,
    ):
        consume = inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
        consume(user_registered("user-ada", "ada@example.com"))
        consume(user_email_verified("user-ada"))
        for _ in range(mails - 1):  # with the welcome mail: `mails`
            consume(order_created("user-ada"))
        with app.app_context():
            engine = db.engine
        sessions = sessionmaker(bind=engine)
        settings = delivery_settings(app.config)
        stop = threading.Event()
        loop = threading.Thread(target=run_delivery_loop, args=(sessions, settings, stop))
        with counting_statements(engine) as statements:
            cpu, wall = time.process_time(), time.perf_counter()
            loop.start()
            try:
                while (sent := _count_sent(sessions)) < mails and loop.is_alive():
                    time.sleep(0.25)
            finally:
                stop.set()
                loop.join(timeout=30)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        stored = _wait_stored(Path(var_dir) / "mail", mails)
    return {
        "mails": sent,
        "stored": stored,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "mails_per_cpu_second": sent / cpu,
        "cpu_ms_per_mail": 1000 * cpu / sent,
        "statements_per_mail": statements.total() / sent,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument(
        "--loop",
        action="store_true",
        help="the whole delivery pass on PostgreSQL (claim, send, record), not the sender alone",
    )
    args = parser.parse_args()
    result = run_loop(args.mails) if args.loop else run(args.mails)
    what = "delivery loop" if args.loop else "sender"
    sys.stdout.write(
        f"{what}, {result['mails']:.0f} mails ({result['stored']:.0f} stored by the sink): "
        f"{result['cpu_seconds']:.2f} CPU s, {result['wall_seconds']:.2f} wall s; "
        f"{result['mails_per_cpu_second']:.0f} mails per CPU-second "
        f"({result['cpu_ms_per_mail']:.3f} CPU ms per mail)"
        + (
            f"; {result['statements_per_mail']:.2f} SQL statements and commits per mail"
            " (the sent-count polls included)"
            if "statements_per_mail" in result
            else ""
        )
        + "\n"
    )
    return 0 if result["stored"] >= result["mails"] else 1


if __name__ == "__main__":
    sys.exit(main())
