"""Event-path benchmarks: outbox relay, consumer, end-to-end latency, backlog after an outage."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg
import requests
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from shared import contracts
from shared.events import Event
from shared.messaging import Publisher, declare_topology, queue_name
from shared.outbox import run_relay
from tests import support

# What the benchmarks order: a product of the demo catalogue (`flask seed-products`, which
# the Suite runs), priced by the server at 1250 per unit.
ORDER_BODY = {"currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 2}]}
# The lines of the order.created event such an order publishes.
ORDER_EVENT_ITEMS: list[dict[str, Any]] = [
    {"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}
]


def libpq_url(url: str) -> str:
    """A SQLAlchemy psycopg URL as psycopg itself takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def user_registered_event(user_id: str) -> Any:
    """A user.registered event as the auth service records it, for a synthetic user.

    The consumer measurements send one first: notifications then know the user's email, so
    their deliveries go out as in production instead of failing ("no email address is
    known") and coming back for retries during every later measurement.
    """
    return contracts.build(
        contracts.UserRegisteredV1(
            user_id=user_id, email=f"{user_id}@bench.example.com", name="Bench", version=1
        )
    )


def user_email_verified_event(user_id: str) -> Any:
    """A user.email_verified event for a synthetic user, sent right after its registration.

    Only a verified address receives mail: without it, the measured deliveries would not
    exist, and the numbers would describe less work than production does.
    """
    return contracts.build(contracts.UserEmailVerifiedV1(user_id=user_id, version=1))


def order_created_event(user_id: str) -> Any:
    """An order.created event as the orders service records it."""
    return contracts.build(
        contracts.OrderCreatedV1(
            order_id=str(uuid.uuid4()),
            user_id=user_id,
            status="pending",
            total_cents=2500,
            currency="EUR",
            items=[contracts.OrderItemV1(**item) for item in ORDER_EVENT_ITEMS],
            version=1,
        )
    )


# -- outbox relay ------------------------------------------------------------------------


@dataclass
class RelayRun:
    """One drain of the outbox by run_relay."""

    events: int
    seconds: float
    queued: int

    @property
    def rate(self) -> float:
        """Events published (persistent, confirmed) and marked sent per second."""
        return self.events / self.seconds


def relay_throughput(*, events: int, runs: int, batch_size: int = 500) -> list[RelayRun]:
    """Insert `events` outbox rows into a fresh orders outbox and time run_relay draining them.

    The rows go to a fresh vhost where a quorum queue (declared like a service's) is bound
    for the type, so every message is routed, persisted and confirmed as in production.
    """
    from services.orders.models import Outbox

    url = support.create_database("bench_relay")
    vhost, amqp_url = support.create_vhost("bench-relay")
    engine = sa.create_engine(url)
    try:
        Outbox.__table__.create(engine)  # type: ignore[attr-defined]
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            declare_topology(
                connection.channel(),
                "relay-sink",
                ["order.created"],
                delivery_limit=5,
                retry_delays=[1],
            )
        factory = sessionmaker(bind=engine)
        results = []
        for _ in range(runs):
            _insert_outbox_rows(engine, Outbox, events)
            before = _queue_depth(amqp_url, queue_name("relay-sink"))
            stop = threading.Event()
            relay = threading.Thread(
                target=run_relay,
                args=(factory, Outbox, amqp_url),
                kwargs={"batch_size": batch_size, "idle_seconds": 0.05, "stop_event": stop},
                name="bench-relay",
            )
            started = time.monotonic()
            relay.start()
            with engine.connect() as conn:
                while conn.execute(
                    sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
                ).scalar_one():
                    conn.rollback()
                    time.sleep(0.02)
                    if time.monotonic() - started > 300:
                        raise RuntimeError("the relay did not drain the outbox within 300 s")
            seconds = time.monotonic() - started
            stop.set()
            relay.join(timeout=30)
            queued = _queue_depth(amqp_url, queue_name("relay-sink")) - before
            results.append(RelayRun(events, seconds, queued))
        return results
    finally:
        engine.dispose()
        support.drop_database(url)
        support.delete_vhost(vhost)


def _insert_outbox_rows(engine: sa.Engine, model: Any, count: int) -> None:
    now = datetime.now(UTC)
    rows = []
    for _ in range(count):
        event = order_created_event("bench-relay-user")
        rows.append(
            {
                "event_id": event.id,
                "type": event.type,
                "payload": json.loads(event.to_json()),
                "created_at": now,
                "available_at": now,
                "attempts": 0,
            }
        )
    with engine.begin() as conn:
        conn.execute(sa.delete(model))
        for start in range(0, len(rows), 5000):
            conn.execute(sa.insert(model), rows[start : start + 5000])


def _queue_depth(amqp_url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        frame = connection.channel().queue_declare(queue=queue, passive=True)
        return int(frame.method.message_count)


# -- consumer ------------------------------------------------------------------------------


@dataclass
class ConsumerRun:
    """Events published at once to the notifications consumer, and how long it took to apply."""

    events: int
    publish_seconds: float
    seconds: float

    @property
    def rate(self) -> float:
        """Events turned into notification rows per second."""
        return self.events / self.seconds


class ProducerPublishers:
    """Publishes each event as the broker user of its producing service, as the suite's
    consumers require (shared.messaging.producers): one Publisher per producer, `fallback`'s
    user for a service without a URL of its own."""

    def __init__(self, urls: Mapping[str, str], fallback: str) -> None:
        self.urls = dict(urls)
        self.fallback = fallback
        self.publishers: dict[str, Publisher] = {}

    def _for(self, source: str) -> Publisher:
        url = self.urls.get(source.lstrip("/"), self.fallback)
        if url not in self.publishers:
            self.publishers[url] = Publisher(url)
        return self.publishers[url]

    def publish(self, event: Event) -> bool:
        """Publish one event; True when routed and confirmed."""
        return self.publish_batch([event])[0]

    def publish_batch(self, events: Sequence[Event]) -> list[bool]:
        """Publish in order, each run of one producer's events as one batch."""
        confirmed: list[bool] = []
        for source, run in itertools.groupby(events, key=lambda event: event.source):
            confirmed += self._for(source).publish_batch(list(run))
        return confirmed

    def close(self) -> None:
        """Close every connection."""
        for publisher in self.publishers.values():
            publisher.close()


def consumer_throughput(
    *, amqp_urls: Mapping[str, str], amqp_url: str, notifications_db: str, events: int, runs: int
) -> list[ConsumerRun]:
    """Publish `events` order.created events and time until the notification rows exist.

    `amqp_urls` are the producing services' own broker URLs (`amqp_url` for any other).
    """
    results = []
    publisher = ProducerPublishers(amqp_urls, amqp_url)
    try:
        for _ in range(runs):
            user_id = f"bench-consumer-{uuid.uuid4().hex[:12]}"
            if not all(
                publisher.publish_batch(
                    [user_registered_event(user_id), user_email_verified_event(user_id)]
                )
            ):
                raise RuntimeError("the broker did not confirm the consumer benchmark's user")
            batch = [order_created_event(user_id) for _ in range(events)]
            started = time.time()
            for offset in range(0, events, 500):
                if not all(publisher.publish_batch(batch[offset : offset + 500])):
                    raise RuntimeError("the broker did not confirm the consumer benchmark's events")
            published = time.time()
            last = _wait_for_notifications(notifications_db, user_id, events, timeout=600)
            results.append(ConsumerRun(events, published - started, last - started))
    finally:
        publisher.close()
    return results


def _wait_for_notifications(db_url: str, user_id: str, count: int, *, timeout: float) -> float:
    """Poll until `count` notifications of the user exist; the newest one's created_at (epoch)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*), max(created_at) FROM notifications"
                " WHERE user_id = %s AND event_type = 'order.created'",
                (user_id,),
            ).fetchone()
            assert row is not None
            if row[0] >= count:
                return float(row[1].timestamp())
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {row[0]} of {count} notifications within {timeout} s")
            time.sleep(0.05)


# -- end-to-end latency --------------------------------------------------------------------


@dataclass
class Sample:
    """One POST of the open-loop driver."""

    due: float  # when the schedule said to send it (epoch seconds)
    sent: float
    answered: float
    status: int
    order_id: str | None


def open_loop(
    send: Callable[[float], Sample], *, rate: float, seconds: float, pool: int = 64
) -> list[Sample]:
    """Call send() at a fixed schedule (rate per second), whatever the answers' latency."""
    count = max(1, round(rate * seconds))
    with ThreadPoolExecutor(max_workers=pool, thread_name_prefix="open-loop") as executor:
        start = time.time() + 0.2
        futures = []
        for k in range(count):
            due = start + k / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            futures.append(executor.submit(send, due))
        return [f.result() for f in futures]


def order_poster(url: str, tokens: Sequence[str]) -> Callable[[float], Sample]:
    """send() for open_loop: POST one order as the next user, each thread its own session."""
    local = threading.local()
    counter = iter(range(10**12))
    lock = threading.Lock()

    def send(due: float) -> Sample:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
        with lock:
            token = tokens[next(counter) % len(tokens)]
        sent = time.time()
        try:
            response = session.post(
                url, json=ORDER_BODY, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
        except requests.RequestException:
            return Sample(due, sent, time.time(), 0, None)
        answered = time.time()
        order_id = response.json().get("id") if response.status_code == 201 else None
        return Sample(due, sent, answered, response.status_code, order_id)

    return send


@dataclass
class LatencyRun:
    """End-to-end latencies (ms) of one open-loop run: POST answered -> notification row."""

    rate: float
    orders: int
    errors: int
    latencies_ms: list[float]
    from_send_ms: list[float]
    max_lateness_ms: float
    missing: int


def notification_times(
    orders_db: str, notifications_db: str, order_ids: Sequence[str], *, timeout: float
) -> dict[str, float]:
    """order id -> its notification's created_at (epoch), waiting until all exist."""
    wanted = set(order_ids)
    with psycopg.connect(libpq_url(orders_db), autocommit=True) as conn:
        events: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while len(events) < len(wanted) and time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT payload->'data'->>'order_id', event_id FROM outbox"
                " WHERE type = 'order.created' AND payload->'data'->>'order_id' = ANY(%s)",
                (list(wanted),),
            ).fetchall()
            events = {str(order): str(event) for order, event in rows}
            if len(events) < len(wanted):
                time.sleep(0.2)
    by_event = {event: order for order, event in events.items()}
    found: dict[str, float] = {}
    with psycopg.connect(libpq_url(notifications_db), autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while True:
            rows = conn.execute(
                "SELECT event_id, created_at FROM notifications WHERE event_id = ANY(%s)",
                (list(by_event),),
            ).fetchall()
            found = {by_event[str(e)]: float(created.timestamp()) for e, created in rows}
            if len(found) >= len(by_event) or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


def e2e_latency(
    *,
    post_url: str,
    tokens: Sequence[str],
    orders_db: str,
    notifications_db: str,
    rate: float,
    seconds: float,
) -> LatencyRun:
    """Place orders at a fixed rate and measure until each one's notification row exists."""
    samples = open_loop(order_poster(post_url, tokens), rate=rate, seconds=seconds)
    placed = [s for s in samples if s.order_id]
    times = notification_times(
        orders_db, notifications_db, [s.order_id for s in placed if s.order_id], timeout=60
    )
    latencies = []
    from_send = []
    for sample in placed:
        created = times.get(sample.order_id or "")
        if created is not None:
            latencies.append((created - sample.answered) * 1000)
            from_send.append((created - sample.sent) * 1000)
    return LatencyRun(
        rate=rate,
        orders=len(samples),
        errors=len(samples) - len(placed),
        latencies_ms=latencies,
        from_send_ms=from_send,
        max_lateness_ms=max((s.sent - s.due) * 1000 for s in samples),
        missing=len(placed) - len(latencies),
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- backlog after a broker outage ---------------------------------------------------------


def post_orders(url: str, tokens: Sequence[str], count: int, *, threads: int = 8) -> int:
    """POST `count` orders as fast as `threads` clients can; return how many failed."""
    send = order_poster(url, tokens)
    with ThreadPoolExecutor(max_workers=threads) as executor:
        samples = list(executor.map(lambda _k: send(time.time()), range(count)))
    return sum(1 for s in samples if s.status != 201)


@dataclass
class DrainRun:
    """A backlog built while the broker was down, and how it drained once it was back."""

    events: int
    post_errors: int
    outage_seconds: float
    first_after_seconds: float  # broker back -> first notification (reconnect backoff)
    drain_seconds: float  # broker back -> last notification

    @property
    def rate(self) -> float:
        """Events per second from the first to the last notification."""
        span = self.drain_seconds - self.first_after_seconds
        return self.events / span if span > 0 else float("nan")


def count_since(
    db_url: str, user_id: str, *, after: float | None = None
) -> tuple[int, float | None, float | None]:
    """The user's order notifications (created after `after`, epoch): count, first, last."""
    since = datetime.fromtimestamp(after if after is not None else 0, UTC)
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), min(created_at), max(created_at) FROM notifications"
            " WHERE user_id = %s AND event_type = 'order.created' AND created_at > %s",
            (user_id, since),
        ).fetchone()
    assert row is not None
    first = row[1].timestamp() if row[1] is not None else None
    last = row[2].timestamp() if row[2] is not None else None
    return int(row[0]), first, last
