"""Event-pipeline measurements added beside bench/events.py: the plain consumer baseline,
mail delivery throughput and the sustained open-loop run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from bench import events as ev
from shared.messaging import Publisher

# -- the plain consumer baseline -----------------------------------------------------------


def baseline_consumer_run(*, amqp_url: str, db_url: str, events: int) -> ev.ConsumerRun:
    """Publish `events` order.created events to the baseline's vhost, as the suite's consumer
    gets them (same publisher, a quorum queue declared alike); time until all rows exist."""
    user_id = f"bench-baseline-{uuid.uuid4().hex[:12]}"
    batch = [ev.order_created_event(user_id) for _ in range(events)]
    publisher = Publisher(amqp_url)
    try:
        started = time.time()
        for offset in range(0, events, 500):
            if not all(publisher.publish_batch(batch[offset : offset + 500])):
                raise RuntimeError("the broker did not confirm the baseline consumer's events")
        published = time.time()
    finally:
        publisher.close()
    deadline = time.monotonic() + 600
    with psycopg.connect(ev.libpq_url(db_url), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*), max(created_at) FROM consumed"
                " WHERE payload->'data'->>'user_id' = %s",
                (user_id,),
            ).fetchone()
            assert row is not None
            if row[0] >= events:
                last = float(row[1].timestamp())
                return ev.ConsumerRun(events, published - started, last - started)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the baseline consumer wrote {row[0]} of {events} rows")
            time.sleep(0.05)


# -- mail delivery ---------------------------------------------------------------------------


@dataclass
class MailRun:
    """Emails pending delivery, and how long one delivery process took to send them all."""

    mails: int
    first_seconds: float  # delivery process started -> first email sent (its start-up)
    seconds: float  # delivery process started -> last email sent

    @property
    def rate(self) -> float:
        """Emails sent per second from the first to the last (start-up left out)."""
        span = self.seconds - self.first_seconds
        return (self.mails - 1) / span if span > 0 and self.mails > 1 else float("nan")


def email_deliveries(db_url: str, user_id: str) -> tuple[int, int, float | None, float | None]:
    """The user's email deliveries: how many, how many sent, first and last sent_at (epoch)."""
    with psycopg.connect(ev.libpq_url(db_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'sent'),"
            " min(sent_at), max(sent_at) FROM deliveries"
            " WHERE user_id = %s AND channel = 'email'",
            (user_id,),
        ).fetchone()
    assert row is not None
    first = row[2].timestamp() if row[2] is not None else None
    last = row[3].timestamp() if row[3] is not None else None
    return int(row[0]), int(row[1]), first, last


def contact_verified(db_url: str, user_id: str) -> bool:
    """True once notifications knows the user's address as verified (mail goes out)."""
    with psycopg.connect(ev.libpq_url(db_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT email_verified FROM contacts WHERE user_id = %s", (user_id,)
        ).fetchone()
    return bool(row and row[0])


# -- sustained open loop ---------------------------------------------------------------------


@dataclass
class SustainedRun:
    """Orders placed through the gateway at a fixed rate, and when each one was notified."""

    rate: float
    seconds: float
    start: float  # the first send's due time (epoch)
    samples: list[ev.Sample]
    notified: dict[str, float]  # order id -> notification row's created_at (epoch)

    @property
    def placed(self) -> list[ev.Sample]:
        """The POSTs answered 201."""
        return [s for s in self.samples if s.order_id]

    @property
    def lost(self) -> int:
        """Orders placed whose notification never appeared."""
        return sum(1 for s in self.placed if s.order_id not in self.notified)

    def from_send_ms(self) -> list[float]:
        """POST sent -> notification row, per notified order."""
        return [
            (self.notified[s.order_id] - s.sent) * 1000
            for s in self.placed
            if s.order_id in self.notified
        ]


def sustained(
    *,
    post_url: str,
    tokens: Sequence[str],
    orders_db: str,
    notifications_db: str,
    rate: float,
    seconds: float,
) -> SustainedRun:
    """Place orders at `rate` for `seconds` and wait (up to 2 minutes) for every notification."""
    samples = ev.open_loop(ev.order_poster(post_url, tokens), rate=rate, seconds=seconds, pool=128)
    order_ids = [s.order_id for s in samples if s.order_id]
    notified = ev.notification_times(orders_db, notifications_db, order_ids, timeout=120)
    start = min((s.due for s in samples), default=datetime.now(UTC).timestamp())
    return SustainedRun(rate, seconds, start, samples, notified)
