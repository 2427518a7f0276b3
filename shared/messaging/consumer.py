"""The retrying consumer: handler per event, retries with backoff, then the DLQ.

A handler failing because a dependency is down (TransientError, a lost database or Redis)
takes none of the retry/DLQ paths: the consumer holds the message and retries it in place.
pika is not thread-safe: every Consumer opens its own connection lazily, in the thread that
uses it, and nothing here connects at import time.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
import pika.exceptions

from shared.backoff import jittered_delay
from shared.context import correlation
from shared.events import Event, InvalidEvent, parse_event
from shared.messaging.failures import (
    BrokerUnavailable,
    TopologyError,
    error_text,
    is_transient_error,
)
from shared.messaging.metrics import (
    DLQ_REASONS,
    EVENT_HANDLING_LAG,
    EVENTS_BATCHES,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
    EVENTS_PROCESSED,
    EVENTS_REDELIVERED,
    EVENTS_REQUEUED,
    EVENTS_TRANSIENT_FAILURES,
)
from shared.messaging.producers import (
    PRODUCER_HEADER,
    ProducerCheck,
    broker_user,
    original_producer,
)
from shared.messaging.topology import (
    CONSUMER_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    REASON_HEADER,
    RETRIES_HEADER,
    close_quietly,
    connection_parameters,
    declare_topology,
    dlq_name,
    queue_name,
    republished_properties,
    retry_queue_name,
)

log = logging.getLogger(__name__)


def observe_handling_lag(consumer: str, event: Event) -> None:
    """Record how long a handled event took from its creation (event_handling_lag_seconds)."""
    lag = (datetime.now(UTC) - event.time).total_seconds()
    EVENT_HANDLING_LAG.labels(consumer, event.type).observe(max(0.0, lag))


def _header_int(headers: Mapping[str, Any], name: str) -> int:
    value = headers.get(name)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


@dataclass
class _Delivery:
    """A message the broker handed us and we have not settled yet."""

    method: Any
    properties: Any
    body: bytes
    received_at: float  # time.monotonic()


class Consumer:
    """Consumes a service's queue: handler per event, retries with backoff, then the DLQ.

    pika's delivery callback only appends the message to a local buffer; the loop of
    `_consume_once` handles it from there, outside every pika callback. That is what lets
    the consumer wait for a dependency while holding a message: it waits in
    process_data_events, which answers heartbeats and buffers new deliveries. The same wait
    inside the callback would be a nested process_data_events, where BlockingConnection
    dispatches nothing, so deliveries would pile up inside pika and the stop logic could
    not see them.

    What happens to an event:

    * handled: acked after the handler (and its commit) returned;
    * malformed, or the handler raised InvalidEvent: straight to the DLQ;
    * with a `producers` check, published by anyone but the broker user of the event type's
      producer (shared.messaging.producers): straight to the DLQ, never handled;
    * the handler failed on a dependency (`is_transient`: the database, Redis... is down):
      the message stays unacked and is retried in place with capped, jittered backoff until
      the dependency is back; the prefetched messages wait in the buffer. Nothing goes back
      to the broker, so neither the retry tiers nor the quorum queue's x-delivery-limit
      (which counts every return) are used up by an outage;
    * any other failure: the retry tiers, then the DLQ.

    With a `batch_handler`, what is buffered is handled up to `batch_size` at a time in one
    call (one transaction) and acked with one frame; a batch that fails for any reason but
    a dependency goes through the per-event path above, so only its bad event is retried or
    dead-lettered (see "a batch of messages" below).

    A message held for `max_hold` seconds (and everything buffered behind it) is moved to
    the back of the queue as a fresh copy: RabbitMQ closes a channel that keeps a delivery
    unacked past its consumer_timeout (30 min by default), which would return them all.

    stop(): the consumer finishes the messages already delivered (within `drain_timeout`;
    what is left then goes to the back of the queue as copies), cancels itself at the broker
    (see "stopping" below for the order of things), acks, and closes. A rolling restart returns
    nothing to the queue, so it counts towards no message's delivery limit.
    """

    def __init__(
        self,
        amqp_url: str,
        consumer: str,
        routing_keys: Sequence[str],
        handler: Callable[[Event], None],
        *,
        batch_handler: Callable[[Sequence[Event]], None] | None = None,
        batch_size: int = 100,
        prefetch: int = 20,
        delivery_limit: int = 5,
        retry_delays: Sequence[float] = (1, 5, 30),
        max_reconnect_delay: float = 5.0,
        is_transient: Callable[[BaseException], bool] = is_transient_error,
        max_transient_delay: float = 10.0,
        max_hold: float = 600.0,
        drain_timeout: float = 20.0,
        stop_settle_seconds: float = 0.5,
        producers: ProducerCheck | None = None,
    ) -> None:
        self.amqp_url = amqp_url
        self.consumer = consumer
        self.routing_keys = list(routing_keys)
        self.handler = handler
        self.batch_handler = batch_handler
        self.batch_size = batch_size
        # How many buffered messages (of a batch that failed) go through the per-event path.
        self._one_by_one = 0
        self.prefetch = prefetch
        self.delivery_limit = delivery_limit
        self.retry_delays = [float(d) for d in retry_delays]
        self.max_reconnect_delay = max_reconnect_delay
        self.is_transient = is_transient
        self.max_transient_delay = max_transient_delay
        self.max_hold = max_hold
        self.drain_timeout = drain_timeout
        self.stop_settle_seconds = stop_settle_seconds
        self.queue = queue_name(consumer)
        self.producers = producers
        # Copies this consumer republishes carry its own user (the broker refuses another).
        self._own_user = broker_user(amqp_url)
        # A plain bool, not threading.Event: stop() runs in signal handlers, where taking
        # a lock the interrupted code may hold would deadlock.
        self._stop_requested = False
        # State of the current connection (see _consume_once).
        self._connection: Any = None
        self._channel: Any = None
        self._consumer_tag: str | None = None
        self._deliveries: deque[_Delivery] = deque()
        self._deferred_acks: list[int] = []
        self._cancelled = False
        self._drain_deadline = math.inf
        self._last_arrival = 0.0
        self._init_metrics()

    def _init_metrics(self) -> None:
        # Series exist (at 0) from the start, so rate() and alerts see them before the
        # first failure rather than an absent series.
        for key in self.routing_keys:
            if "*" not in key and "#" not in key:
                EVENTS_PROCESSED.labels(self.consumer, key)
                EVENTS_FAILED.labels(self.consumer, key)
        EVENTS_REDELIVERED.labels(self.consumer)
        EVENTS_BATCHES.labels(self.consumer)
        EVENTS_TRANSIENT_FAILURES.labels(self.consumer)
        EVENTS_REQUEUED.labels(self.consumer)
        for reason in DLQ_REASONS:
            EVENTS_DEAD_LETTERED.labels(self.consumer, reason)

    def stop(self) -> None:
        """Make run() return once the delivered messages are settled; signal-safe; final."""
        self._stop_requested = True

    def run(self) -> None:
        """Consume until stop(); reconnect with jittered exponential backoff on failures."""
        failures = 0
        while not self._stop_requested:
            try:
                self._consume_once()
                failures = 0
            except (pika.exceptions.AMQPError, OSError) as exc:
                failures += 1
                self._back_off(failures, exc)

    def declare(self, channel: Any) -> None:
        """Declare this consumer's exchanges and queues on `channel` (idempotent)."""
        try:
            declare_topology(
                channel,
                self.consumer,
                self.routing_keys,
                delivery_limit=self.delivery_limit,
                retry_delays=self.retry_delays,
            )
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code in (403, 406):
                # Missing permissions, or queue arguments that differ from the existing
                # queue's: reconnecting cannot fix configuration, so fail loudly.
                raise TopologyError(f"{self.consumer}: {exc}") from exc
            raise

    def setup(self, timeout: float = 60.0) -> None:
        """Declare the topology without consuming, waiting up to `timeout` s for the broker.

        Run before anything publishes: the broker routes an event only to queues that exist,
        so a service whose queue is not declared yet would never see it.
        """
        deadline = time.monotonic() + timeout
        failures = 0
        while True:
            try:
                connection = pika.BlockingConnection(
                    connection_parameters(self.amqp_url, connection_name=f"{self.consumer}-setup")
                )
                try:
                    self.declare(connection.channel())
                finally:
                    close_quietly(connection)
                return
            except (pika.exceptions.AMQPError, OSError) as exc:
                failures += 1
                if time.monotonic() >= deadline:
                    raise BrokerUnavailable(
                        f"cannot declare the queues of {self.consumer} within {timeout}s: {exc}"
                    ) from exc
                self._back_off(failures, exc)

    def _back_off(self, failures: int, exc: BaseException) -> None:
        # Jittered: the workers of a service do not reconnect in step.
        delay = jittered_delay(failures, base=0.5, cap=self.max_reconnect_delay)
        log.warning(
            "consumer lost the broker; reconnecting",
            extra={"consumer": self.consumer, "error": str(exc), "retry_in": round(delay, 2)},
        )
        deadline = time.monotonic() + delay
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # -- one connection -------------------------------------------------------------------

    def _consume_once(self) -> None:
        connection = pika.BlockingConnection(
            connection_parameters(self.amqp_url, connection_name=f"{self.consumer}-consumer")
        )
        self._connection = connection
        self._deliveries.clear()
        self._deferred_acks.clear()
        self._one_by_one = 0
        self._cancelled = False
        self._drain_deadline = math.inf
        try:
            channel = self._channel = connection.channel()
            self.declare(channel)
            # Confirms for the retry/DLQ republish: we ack the original only once the copy
            # is safe. Blocking confirms are fine here: that is the failure path.
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.prefetch)
            self._consumer_tag = channel.basic_consume(
                self.queue, self._on_delivery, auto_ack=False
            )
            log.info("consumer started", extra={"consumer": self.consumer, "queue": self.queue})
            while True:
                self._note_stop()
                if self._deliveries and time.monotonic() >= self._drain_deadline:
                    self._cancel()
                    left = list(self._deliveries)
                    self._deliveries.clear()
                    self._requeue(left, "not handled within the stop deadline")
                    break
                if self._deliveries:
                    self._process_next()
                elif self._cancelled:
                    break
                elif self._drain_deadline < math.inf:
                    if self._stop_settled():
                        self._cancel()
                    else:
                        connection.process_data_events(time_limit=0.05)
                else:
                    connection.process_data_events(time_limit=0.25)
            log.info("consumer stopped", extra={"consumer": self.consumer})
        finally:
            # Messages still unacked here (a lost connection, or a requeue that failed) go
            # back to the queue when the connection closes.
            self._deliveries.clear()
            self._deferred_acks.clear()
            self._connection = self._channel = self._consumer_tag = None
            close_quietly(connection)

    def _on_delivery(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._last_arrival = time.monotonic()
        self._deliveries.append(_Delivery(method, properties, body, self._last_arrival))

    # -- stopping -------------------------------------------------------------------------
    #
    # Closing a channel, or cancelling the consumer, hands back what the broker sent us
    # and we have not acked, and a quorum queue counts every such return towards the
    # message's x-delivery-limit. So on stop we settle everything delivered first:
    #
    # 1. From the stop on, acks are deferred. Each ack frees a place in the prefetch window
    #    and the broker fills it (a quorum queue a few milliseconds later), so acking would
    #    keep deliveries in flight. Without acks, at most `prefetch` messages can be ours.
    #    (A crash meanwhile redelivers the handled ones; the inbox makes that harmless.)
    # 2. Every message delivered, before or after the stop, is handled.
    # 3. Once the window is full, or nothing arrived for `stop_settle_seconds`, no delivery
    #    is on its way: basic.cancel (`_cancel`), then the deferred acks, then close.
    #
    # What the broker still sends between basic.cancel and its cancel-ok is rejected with
    # requeue by pika's BlockingChannel, and no public API keeps it: that takes a new
    # message published within that one round trip while the window has room (or a broker
    # slower than `stop_settle_seconds` to refill it), and costs each such message one
    # delivery count, at most `prefetch` of them per stop. `drain_timeout` bounds the
    # whole stop: what is not handled by then goes to the back of the queue as a copy
    # (`_requeue`), which counts nothing.

    def _note_stop(self) -> None:
        if self._stop_requested and self._drain_deadline == math.inf:
            now = time.monotonic()
            self._drain_deadline = now + self.drain_timeout
            self._last_arrival = now
            log.info(
                "consumer stopping; finishing the messages already delivered",
                extra={"consumer": self.consumer, "buffered": len(self._deliveries)},
            )

    def _stop_settled(self) -> bool:
        """True once no delivery can be on its way to us (buffer empty, acks deferred)."""
        window_full = len(self._deferred_acks) >= self.prefetch
        quiet = time.monotonic() - self._last_arrival >= self.stop_settle_seconds
        return window_full or quiet or time.monotonic() >= self._drain_deadline

    def _settle(self, delivery_tag: int) -> None:
        """Ack a message, or (while stopping, before the cancel) remember to ack it then."""
        self._note_stop()
        if self._stop_requested and not self._cancelled:
            self._deferred_acks.append(delivery_tag)
        else:
            self._channel.basic_ack(delivery_tag)

    def _cancel(self) -> None:
        """basic.cancel, then the deferred acks; deliveries pika already read are kept.

        basic_cancel makes pika reject (with requeue) whatever it read but did not dispatch
        yet, so process_data_events first moves that into our buffer; the caller handles it.
        """
        if self._cancelled:
            return
        self._connection.process_data_events(time_limit=0)
        if self._consumer_tag is not None:
            self._channel.basic_cancel(self._consumer_tag)
        self._cancelled = True
        for tag in self._deferred_acks:
            self._channel.basic_ack(tag)
        self._deferred_acks.clear()

    # -- a batch of messages --------------------------------------------------------------
    #
    # With a batch_handler, what is buffered (up to batch_size) is handled in one call, which
    # commits the batch's effects and inbox rows in one transaction, and one ack with
    # multiple=True settles it. Everything delivered before the batch is settled by then
    # (handled one at a time, in order), so that ack covers only the batch.
    # If the batch handler fails for any reason other than a dependency being down, nothing
    # of it was committed, and its events go one by one through the per-event path: each
    # good one is applied and acked, and only the bad one takes the retries and the DLQ.

    def _process_next(self) -> None:
        # A requeue may have emptied the buffer since the count was set.
        self._one_by_one = min(self._one_by_one, len(self._deliveries))
        if self._one_by_one > 0 or self.batch_handler is None or len(self._deliveries) < 2:
            self._one_by_one = max(0, self._one_by_one - 1)
            self._process(self._deliveries.popleft())
            return
        batch = [self._deliveries.popleft()]
        while self._deliveries and len(batch) < self.batch_size:
            batch.append(self._deliveries.popleft())
        self._process_batch(self.batch_handler, batch)

    def _process_batch(
        self, batch_handler: Callable[[Sequence[Event]], None], deliveries: list[_Delivery]
    ) -> None:
        parsed: list[tuple[_Delivery, Event]] = []
        for delivery in deliveries:
            try:
                event = parse_event(delivery.body)
            except InvalidEvent as exc:
                if delivery.method.redelivered:
                    EVENTS_REDELIVERED.labels(self.consumer).inc()
                self._malformed(delivery, exc)
                continue
            if self._refused(delivery, event):
                continue
            parsed.append((delivery, event))
        if len(parsed) < 2:
            # Back to the buffer's front, in order: the per-event path handles them.
            self._retry_one_by_one([delivery for delivery, _event in parsed])
            return
        held = [delivery for delivery, _event in parsed]
        events = [event for _delivery, event in parsed]
        extra = {"consumer": self.consumer, "batch": len(events)}
        attempts = 0
        while True:
            attempts += 1
            try:
                batch_handler(events)
                break
            except Exception as exc:
                error = exc
            if not self.is_transient(error):
                log.warning(
                    "batch failed; handling its events one by one",
                    extra={**extra, "error": error_text(error)},
                )
                self._retry_one_by_one(held)
                return
            EVENTS_TRANSIENT_FAILURES.labels(self.consumer).inc()
            if not self._hold(held, attempts, error, extra):
                return
        self._settle_batch([delivery.method.delivery_tag for delivery in held])
        redelivered = sum(1 for delivery in held if delivery.method.redelivered)
        if redelivered:
            EVENTS_REDELIVERED.labels(self.consumer).inc(redelivered)
        EVENTS_BATCHES.labels(self.consumer).inc()
        for event in events:
            EVENTS_PROCESSED.labels(self.consumer, event.type).inc()
            observe_handling_lag(self.consumer, event)
            with correlation(event.requestid, event.traceparent):
                log.info(
                    "event handled",
                    extra={
                        "consumer": self.consumer,
                        "event_id": event.id,
                        "event_type": event.type,
                        "request_id": event.requestid,
                    },
                )

    def _retry_one_by_one(self, deliveries: list[_Delivery]) -> None:
        # Put back at the front so that a dependency outage meanwhile holds (and, after
        # max_hold, requeues) them together with the rest of the buffer, as for any message.
        self._deliveries.extendleft(reversed(deliveries))
        self._one_by_one += len(deliveries)

    def _settle_batch(self, delivery_tags: list[int]) -> None:
        """Ack a handled batch with one frame, or (while stopping) remember its acks."""
        self._note_stop()
        if self._stop_requested and not self._cancelled:
            self._deferred_acks.extend(delivery_tags)
        else:
            self._channel.basic_ack(max(delivery_tags), multiple=True)

    # -- one message ----------------------------------------------------------------------

    def _process(self, delivery: _Delivery) -> None:
        headers: dict[str, Any] = dict(delivery.properties.headers or {})
        if delivery.method.redelivered:
            EVENTS_REDELIVERED.labels(self.consumer).inc()
        try:
            event = parse_event(delivery.body)
        except InvalidEvent as exc:
            self._malformed(delivery, exc)
            return
        if self._refused(delivery, event):
            return
        with correlation(event.requestid, event.traceparent):
            self._handle(delivery, headers, event)

    def _refused(self, delivery: _Delivery, event: Event) -> bool:
        """Dead-letter (and True) an event its type's producer did not publish."""
        if self.producers is None:
            return False
        reason = self.producers.refusal(event.type, delivery.properties)
        if reason is None:
            return False
        # Someone with broker access is publishing in another service's name: loud, and
        # kept in the DLQ for whoever investigates; the handler never sees it.
        log.error(
            "event from the wrong producer dead-lettered",
            extra={
                "consumer": self.consumer,
                "event_id": event.id,
                "event_type": event.type,
                "error": reason,
            },
        )
        headers: dict[str, Any] = dict(delivery.properties.headers or {})
        self._move(delivery, headers, dlq_reason="unverified-producer", error=reason)
        return True

    def _malformed(self, delivery: _Delivery, exc: InvalidEvent) -> None:
        log.warning(
            "malformed event dead-lettered",
            extra={
                "consumer": self.consumer,
                "message_id": delivery.properties.message_id,
                "error": str(exc),
            },
        )
        headers: dict[str, Any] = dict(delivery.properties.headers or {})
        self._move(delivery, headers, dlq_reason="malformed", error=str(exc))

    def _handle(self, delivery: _Delivery, headers: dict[str, Any], event: Event) -> None:
        extra = {
            "consumer": self.consumer,
            "event_id": event.id,
            "event_type": event.type,
            "request_id": event.requestid,
            "delivery_count": headers.get("x-delivery-count"),
        }
        attempts = 0
        while True:
            attempts += 1
            try:
                self.handler(event)
                break
            except Exception as exc:
                error = exc
            if not self.is_transient(error):
                self._failed(delivery, headers, event, error, extra)
                return
            EVENTS_TRANSIENT_FAILURES.labels(self.consumer).inc()
            if not self._hold([delivery], attempts, error, extra):
                return
        if attempts > 1:
            log.info("dependency is back; event handled", extra={**extra, "attempts": attempts})
        self._settle(delivery.method.delivery_tag)
        EVENTS_PROCESSED.labels(self.consumer, event.type).inc()
        observe_handling_lag(self.consumer, event)
        # One line per event, as web processes write one per request: with the event's
        # trace id on it, an order can be followed into every consumer.
        log.info("event handled", extra=extra)

    def _hold(
        self, deliveries: list[_Delivery], attempts: int, error: Exception, extra: dict[str, Any]
    ) -> bool:
        """Wait before the next attempt; False when the messages were requeued instead."""
        now = time.monotonic()
        stopping = now >= self._drain_deadline
        if stopping or now - deliveries[0].received_at >= self.max_hold:
            if stopping:
                self._cancel()
            held = [*deliveries, *self._deliveries]
            self._deliveries.clear()
            why = "stopping" if stopping else f"held for {self.max_hold:.0f}s"
            self._requeue(held, f"dependency still unavailable ({why})")
            return False
        delay = jittered_delay(attempts, base=0.5, cap=self.max_transient_delay)
        log.warning(
            "dependency unavailable; holding the event and retrying",
            exc_info=error if attempts == 1 else None,  # the traceback once, not each time
            extra={
                **extra,
                "attempt": attempts,
                "retry_in": round(delay, 2),
                "error": error_text(error),
            },
        )
        self._wait(delay)
        return True

    def _wait(self, seconds: float) -> None:
        """Pause while answering heartbeats and buffering deliveries; cut short by the stop
        deadline."""
        deadline = time.monotonic() + seconds
        while True:
            self._note_stop()
            deadline = min(deadline, self._drain_deadline)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._connection.process_data_events(time_limit=min(0.25, left))

    def _failed(
        self,
        delivery: _Delivery,
        headers: dict[str, Any],
        event: Event,
        exc: Exception,
        extra: dict[str, Any],
    ) -> None:
        EVENTS_FAILED.labels(self.consumer, event.type).inc()
        retries = _header_int(headers, RETRIES_HEADER)
        error = error_text(exc)
        if isinstance(exc, InvalidEvent):
            # The handler found the data unusable: no retry can fix that.
            log.error("event data rejected; dead-lettered", exc_info=exc, extra=extra)
            self._move(delivery, headers, dlq_reason="invalid-data", error=error)
        elif retries < len(self.retry_delays):
            log.warning(
                "event handler failed; will retry",
                exc_info=exc,
                extra={**extra, "retry": retries + 1},
            )
            self._move(delivery, headers, retry=retries + 1, error=error)
        else:
            log.error("event handler failed; dead-lettered", exc_info=exc, extra=extra)
            self._move(delivery, headers, dlq_reason="handler-failed", error=error)

    def _move(
        self,
        delivery: _Delivery,
        headers: dict[str, Any],
        *,
        error: str,
        retry: int | None = None,
        dlq_reason: str | None = None,
    ) -> None:
        """Republish a copy to a retry queue or the DLQ (confirmed), then ack the original."""
        new_headers = {**headers, ERROR_HEADER: error, CONSUMER_HEADER: self.consumer}
        if retry is not None:
            target = retry_queue_name(self.consumer, retry)
            new_headers[RETRIES_HEADER] = retry
        else:
            target = dlq_name(self.consumer)
            new_headers[REASON_HEADER] = dlq_reason
            new_headers[FAILED_AT_HEADER] = datetime.now(UTC).isoformat()
        copy = self._copy_properties(delivery, new_headers)
        try:
            self._channel.basic_publish("", target, delivery.body, properties=copy, mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            # Could not park the copy: requeue the original; the delivery limit bounds this.
            log.error(
                "could not move message; requeued",
                extra={"consumer": self.consumer, "target": target, "error": str(exc)},
            )
            self._channel.basic_nack(delivery.method.delivery_tag, requeue=True)
            return
        self._settle(delivery.method.delivery_tag)
        if dlq_reason is not None:
            EVENTS_DEAD_LETTERED.labels(self.consumer, dlq_reason).inc()

    def _copy_properties(self, delivery: _Delivery, headers: dict[str, Any]) -> Any:
        """The properties of a copy of `delivery` that this consumer republishes: with
        `headers`, the original routing key and producer kept, the delivery count reset."""
        headers.pop("x-delivery-count", None)  # the quorum queue's count, not the copy's
        headers.setdefault("x-original-routing-key", delivery.method.routing_key)
        headers[PRODUCER_HEADER] = original_producer(delivery.properties, self._own_user)
        return republished_properties(delivery.properties, headers, user_id=self._own_user)

    def _requeue(self, deliveries: Sequence[_Delivery], reason: str) -> None:
        """Put unfinished messages at the back of our queue as fresh copies, acking each
        original once its copy is confirmed.

        Returning them (nack, or closing the channel) would count towards x-delivery-limit;
        a copy starts at zero. A crash between publish and ack leaves both, and the inbox
        applies the event once.
        """
        moved = 0
        for delivery in deliveries:
            copy = self._copy_properties(delivery, dict(delivery.properties.headers or {}))
            try:
                self._channel.basic_publish(
                    "", self.queue, delivery.body, properties=copy, mandatory=True
                )
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                # The queue refuses more (reject-publish overflow): keep the originals.
                log.error(
                    "could not requeue held messages",
                    extra={"consumer": self.consumer, "error": str(exc)},
                )
                break
            self._settle(delivery.method.delivery_tag)
            moved += 1
        EVENTS_REQUEUED.labels(self.consumer).inc(moved)
        log.warning(
            "unfinished messages moved to the back of the queue",
            extra={"consumer": self.consumer, "count": moved, "reason": reason},
        )
        kept = list(deliveries[moved:])
        if kept and not self._stop_requested:
            # Still ours: hold them again and try the requeue another max_hold later. When
            # stopping, closing the connection returns them instead.
            for delivery in kept:
                delivery.received_at = time.monotonic()
            self._deliveries.extendleft(reversed(kept))
