"""RabbitMQ plumbing: topology, a fast confirming publisher and a retrying consumer.

One module per job: `topology` (names, connection settings, declared exchanges and queues),
`publisher` (the relay's confirming publisher and its per-batch result), `consumer` (the
retrying consumer), `failures` (what counts as broker trouble or a transient handler error)
and `metrics` (the Prometheus counters). Callers import from here.

pika is not thread-safe: every Publisher and Consumer opens its own connection lazily, in
the thread that uses it, and nothing here connects at import time.
"""

from shared.messaging.consumer import Consumer
from shared.messaging.failures import (
    DEFAULT_TRANSIENT_ERRORS,
    BrokerUnavailable,
    TopologyError,
    TransientError,
    is_transient_error,
    transient_errors,
)
from shared.messaging.metrics import (
    DLQ_REASONS,
    EVENTS_BATCHES,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
    EVENTS_PROCESSED,
    EVENTS_PUBLISHED,
    EVENTS_REDELIVERED,
    EVENTS_REQUEUED,
    EVENTS_TRANSIENT_FAILURES,
    OUTBOX_PUBLISH_FAILURES,
)
from shared.messaging.producers import (
    PRODUCER_HEADER,
    ProducerCheck,
    broker_user,
    original_producer,
)
from shared.messaging.publisher import Publisher, PublishResult, event_properties
from shared.messaging.topology import (
    CONSUMER_HEADER,
    DEAD_LETTER_EXCHANGE,
    ERROR_HEADER,
    EXCHANGE,
    FAILED_AT_HEADER,
    PERSISTENT,
    REASON_HEADER,
    RETRIES_HEADER,
    connection_parameters,
    declare_exchange,
    declare_topology,
    dlq_name,
    queue_name,
    republished_properties,
    retry_queue_name,
)

__all__ = [
    "CONSUMER_HEADER",
    "DEAD_LETTER_EXCHANGE",
    "DEFAULT_TRANSIENT_ERRORS",
    "DLQ_REASONS",
    "ERROR_HEADER",
    "EVENTS_BATCHES",
    "EVENTS_DEAD_LETTERED",
    "EVENTS_FAILED",
    "EVENTS_PROCESSED",
    "EVENTS_PUBLISHED",
    "EVENTS_REDELIVERED",
    "EVENTS_REQUEUED",
    "EVENTS_TRANSIENT_FAILURES",
    "EXCHANGE",
    "FAILED_AT_HEADER",
    "OUTBOX_PUBLISH_FAILURES",
    "PERSISTENT",
    "PRODUCER_HEADER",
    "REASON_HEADER",
    "RETRIES_HEADER",
    "BrokerUnavailable",
    "Consumer",
    "ProducerCheck",
    "PublishResult",
    "Publisher",
    "TopologyError",
    "TransientError",
    "broker_user",
    "connection_parameters",
    "declare_exchange",
    "declare_topology",
    "dlq_name",
    "event_properties",
    "is_transient_error",
    "original_producer",
    "queue_name",
    "republished_properties",
    "retry_queue_name",
    "transient_errors",
]
