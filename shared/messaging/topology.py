"""Names, connection settings and the declared exchanges and queues of the event bus.

Topology per consuming service `<c>` (its `consumer` name):

    exchange "events" (topic) --routing key = event type--> <c>.events (quorum)
    <c>.events --handler raised--> <c>.events.retry.<n> (TTL) --> back to <c>.events
    <c>.events --retries used up, or malformed--> <c>.events.dlq
    <c>.events --x-delivery-limit (crash loop)--> exchange "events.dlx" --> <c>.events.dlq
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions

EXCHANGE = "events"
DEAD_LETTER_EXCHANGE = "events.dlx"
PERSISTENT = 2

# Headers the consumer writes on messages it moves between queues (the DLQ tool reads them).
RETRIES_HEADER = "x-retries"
REASON_HEADER = "x-dlq-reason"
ERROR_HEADER = "x-error"
FAILED_AT_HEADER = "x-failed-at"
CONSUMER_HEADER = "x-consumer"


def republished_properties(
    properties: pika.BasicProperties, headers: dict[str, Any], *, user_id: str | None = None
) -> pika.BasicProperties:
    """Properties for a copy of a message moved between queues: same identity, new headers.

    `user_id` is the republishing connection's own user (the broker refuses any other);
    where the original came from goes in a header (shared.messaging.producers).
    """
    return pika.BasicProperties(
        content_type=properties.content_type,
        delivery_mode=PERSISTENT,
        message_id=properties.message_id,
        type=properties.type,
        timestamp=properties.timestamp,
        user_id=user_id or None,
        headers=headers,
    )


def queue_name(consumer: str) -> str:
    """The consumer's main (quorum) queue."""
    return f"{consumer}.events"


def dlq_name(consumer: str) -> str:
    """The consumer's dead-letter queue."""
    return f"{consumer}.events.dlq"


def retry_queue_name(consumer: str, tier: int) -> str:
    """The delay queue of retry tier `tier` (1-based)."""
    return f"{consumer}.events.retry.{tier}"


def connection_parameters(
    amqp_url: str,
    *,
    heartbeat: int = 30,
    blocked_connection_timeout: float = 60,
    connection_attempts: int = 3,
    retry_delay: float = 1.0,
    socket_timeout: float = 5.0,
    connection_name: str | None = None,
) -> pika.URLParameters:
    """URLParameters with heartbeats, a blocked-connection timeout and bounded connect retries.

    Settings given in the URL's query string (`?heartbeat=60`) win over these defaults, so
    operators can tune a deployment through AMQP_URL alone.
    """
    params = pika.URLParameters(amqp_url)
    given = set(parse_qs(urlsplit(amqp_url).query))
    defaults: dict[str, Any] = {
        "heartbeat": heartbeat,
        # Without it a publisher blocked by a memory/disk alarm waits forever.
        "blocked_connection_timeout": blocked_connection_timeout,
        "connection_attempts": connection_attempts,
        "retry_delay": retry_delay,
        "socket_timeout": socket_timeout,
    }
    for name, value in defaults.items():
        if name not in given:
            setattr(params, name, value)
    if connection_name:
        params.client_properties = {"connection_name": connection_name}
    return params


def declare_exchange(channel: Any) -> None:
    """Declare the durable topic exchange every event is published to."""
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="topic", durable=True)


def declare_topology(
    channel: Any,
    consumer: str,
    routing_keys: Sequence[str],
    *,
    delivery_limit: int,
    retry_delays: Sequence[float],
) -> None:
    """Declare (idempotently) the exchanges and queues one consuming service needs.

    Queue arguments are fixed at creation: changing delivery_limit or a retry delay for an
    existing queue makes RabbitMQ refuse the declaration (PRECONDITION_FAILED) rather than
    silently keep the old value.
    """
    main, dlq = queue_name(consumer), dlq_name(consumer)
    declare_exchange(channel)
    # One direct DLX for all services; the routing key picks the service's DLQ.
    channel.exchange_declare(exchange=DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True)
    # A classic DLQ: operators browse it with get + requeue, which a quorum queue would count
    # as deliveries (and from 4.0 on, drop after its default delivery limit).
    channel.queue_declare(queue=dlq, durable=True, arguments={"x-queue-type": "classic"})
    channel.queue_bind(queue=dlq, exchange=DEAD_LETTER_EXCHANGE, routing_key=dlq)
    channel.queue_declare(
        queue=main,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            # A consumer that crashes mid-handler never acks; the broker counts the
            # redeliveries and dead-letters the message instead of looping forever.
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": dlq,
            # at-least-once keeps a dead letter in this queue until the DLQ confirms it;
            # RabbitMQ only honours it together with reject-publish overflow.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    for key in routing_keys:
        channel.queue_bind(queue=main, exchange=EXCHANGE, routing_key=key)
    for tier, delay in enumerate(retry_delays, start=1):
        # Nothing consumes a retry queue: messages wait out the TTL, then the default
        # exchange dead-letters them straight back into the main queue.
        channel.queue_declare(
            queue=retry_queue_name(consumer, tier),
            durable=True,
            arguments={
                "x-queue-type": "classic",
                "x-message-ttl": max(1, round(delay * 1000)),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": main,
            },
        )


def close_quietly(connection: Any) -> None:
    """Close a BlockingConnection if it is open, ignoring a broker that is already gone."""
    if connection.is_open:
        try:
            connection.close()
        except pika.exceptions.AMQPError:
            pass
