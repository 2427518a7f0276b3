"""Prometheus counters of the publisher and the consumers (one set per process), and the
histogram of how long events took to be handled."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_PROCESSED = Counter("events_processed", "Events handled successfully.", ["consumer", "type"])
EVENTS_FAILED = Counter(
    "events_failed", "Handler failures (each retry counts).", ["consumer", "type"]
)
EVENTS_REDELIVERED = Counter(
    "events_redelivered", "Deliveries the broker flagged as redelivered.", ["consumer"]
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered", "Messages a consumer moved to its DLQ.", ["consumer", "reason"]
)
DLQ_REASONS = ("malformed", "invalid-data", "handler-failed", "unverified-producer")
EVENTS_TRANSIENT_FAILURES = Counter(
    "events_transient_failures",
    "Handler attempts that failed on an unavailable dependency (retried in place).",
    ["consumer"],
)
EVENTS_REQUEUED = Counter(
    "events_requeued",
    "Held messages a consumer put back at the end of its queue as fresh copies.",
    ["consumer"],
)
EVENTS_BATCHES = Counter(
    "events_batches", "Batches of events a consumer handled in one transaction.", ["consumer"]
)
EVENTS_PUBLISHED = Counter("events_published", "Events routed and confirmed by the broker.")
OUTBOX_PUBLISH_FAILURES = Counter(
    "outbox_publish_failures", "Outbox events the broker did not route or confirm."
)

# From the event's time (its producer's commit) to its handler's commit: for order.created
# in notifications, the end-to-end latency from an order to its notification.
EVENT_HANDLING_LAG = Histogram(
    "event_handling_lag_seconds",
    "Time from an event's creation to its successful handling.",
    ["consumer", "type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
