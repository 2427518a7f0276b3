"""Publisher and Consumer against the real RabbitMQ: confirms, routing, retries, dead letters."""

import json

import pika
import pytest
from prometheus_client import REGISTRY

from shared.context import current_request_id, current_traceparent
from shared.events import CONTENT_TYPE, InvalidEvent, new_event
from shared.messaging import (
    EXCHANGE,
    BrokerUnavailable,
    Consumer,
    Publisher,
    TopologyError,
    connection_parameters,
    declare_exchange,
    declare_topology,
    dlq_name,
    queue_name,
    retry_queue_name,
)
from shared.tests.conftest import drain, queue_depth, running, unique_type
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def counter(name, **labels):
    """A consumer counter's current value (0 when the series does not exist)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def bound_queue(channel, name, *routing_keys):
    declare_exchange(channel)
    channel.queue_declare(queue=name, durable=True)
    for key in routing_keys:
        channel.queue_bind(queue=name, exchange=EXCHANGE, routing_key=key)


def test_connection_parameters_set_heartbeat_and_blocked_timeout_unless_the_url_does():
    params = connection_parameters("amqp://u:p@h:5672/%2F")
    assert params.heartbeat == 30
    assert params.blocked_connection_timeout == 60
    tuned = connection_parameters("amqp://u:p@h:5672/%2F?heartbeat=90")
    assert tuned.heartbeat == 90


def test_publish_batch_delivers_every_event_exactly_once_with_its_metadata(amqp_url, channel):
    event_type = unique_type("order")
    bound_queue(channel, f"q-{event_type}", event_type)
    events = [new_event(event_type, "/orders", {"n": n}) for n in range(300)]
    with Publisher(amqp_url) as publisher:
        assert publisher.publish_batch(events) == [True] * len(events)

    messages = drain(channel, f"q-{event_type}")
    assert sorted(json.loads(body)["id"] for _, body in messages) == sorted(e.id for e in events)
    properties = messages[0][0]
    assert properties.delivery_mode == 2
    assert properties.content_type == CONTENT_TYPE
    assert properties.message_id == json.loads(messages[0][1])["id"]


def test_an_event_no_queue_is_bound_for_is_reported_as_not_published(amqp_url, channel):
    routed_type, lonely_type = unique_type("order"), unique_type("nobody")
    bound_queue(channel, f"q-{routed_type}", routed_type)
    batch = [
        new_event(routed_type, "/orders", {}),
        new_event(lonely_type, "/orders", {}),
        new_event(routed_type, "/orders", {}),
    ]
    with Publisher(amqp_url) as publisher:
        assert publisher.publish_batch(batch) == [True, False, True]
        assert "unroutable" in publisher.last_failures[batch[1].id]
        assert publisher.publish(new_event(lonely_type, "/orders", {})) is False
    assert queue_depth(channel, f"q-{routed_type}") == 2


def test_publisher_carries_request_and_trace_ids_in_headers(amqp_url, channel):
    from shared.context import correlation

    event_type = unique_type("order")
    bound_queue(channel, f"q-{event_type}", event_type)
    with correlation("req-42", TRACEPARENT):
        event = new_event(event_type, "/orders", {})
    with Publisher(amqp_url) as publisher:
        assert publisher.publish(event)
    [(properties, _body)] = drain(channel, f"q-{event_type}")
    assert properties.headers == {"requestid": "req-42", "traceparent": TRACEPARENT}


def test_publisher_reconnects_on_the_next_call_after_its_connection_is_gone(amqp_url, channel):
    event_type = unique_type("order")
    bound_queue(channel, f"q-{event_type}", event_type)
    publisher = Publisher(amqp_url)
    try:
        assert publisher.publish(new_event(event_type, "/orders", {}))
        publisher._connection.close()  # as if the broker had dropped us
        publisher.wait(0.2)
        assert publisher.publish(new_event(event_type, "/orders", {}))
    finally:
        publisher.close()
    assert queue_depth(channel, f"q-{event_type}") == 2


def test_publisher_raises_broker_unavailable_when_nothing_listens():
    publisher = Publisher(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    try:
        with pytest.raises(BrokerUnavailable):
            publisher.publish(new_event("order.created", "/orders", {}))
        publisher.wait(0.01)  # idle without a connection is just a sleep
    finally:
        publisher.close()


def test_declare_topology_builds_quorum_queue_retry_tiers_and_dlq(channel, consumer_name):
    event_type = unique_type("a")
    main, dlq = queue_name(consumer_name), dlq_name(consumer_name)
    tier_1, tier_2 = retry_queue_name(consumer_name, 1), retry_queue_name(consumer_name, 2)
    declare_topology(channel, consumer_name, [event_type], delivery_limit=1, retry_delays=[0.1, 60])
    # Declaring again with the same arguments is a no-op (every worker does it at start-up).
    declare_topology(channel, consumer_name, [event_type], delivery_limit=1, retry_delays=[0.1, 60])

    # The main queue is bound for the event type; a retry tier sends its message back into
    # it once the tier's delay is over, and each tier has a delay of its own.
    channel.basic_publish(EXCHANGE, event_type, b"routed")
    channel.basic_publish("", tier_1, b"retried")
    channel.basic_publish("", tier_2, b"held")
    wait_for(lambda: queue_depth(channel, main) == 2, timeout=15, what="tier 1 back in main")
    assert queue_depth(channel, tier_2) == 1

    def get_both() -> dict[bytes, tuple[int, dict]]:
        got = {}
        for _ in range(2):
            method, properties, body = channel.basic_get(main)
            got[body] = (method.delivery_tag, properties.headers or {})
        return got

    first = get_both()
    assert set(first) == {b"routed", b"retried"}
    (death,) = first[b"retried"][1]["x-death"]
    assert (death["queue"], death["reason"]) == (tier_1, "expired")
    for tag, _headers in first.values():
        channel.basic_nack(tag, requeue=True)

    # A quorum queue counts the redeliveries (a classic queue has no such header) ...
    again = get_both()
    assert [headers["x-delivery-count"] for _tag, headers in again.values()] == [1, 1]
    for tag, _headers in again.values():
        channel.basic_nack(tag, requeue=True)

    # ... and past the delivery limit dead-letters the message into the service's DLQ.
    wait_for(lambda: queue_depth(channel, dlq) == 2, timeout=15, what="both in the DLQ")
    assert queue_depth(channel, main) == 0
    assert sorted(body for _properties, body in drain(channel, dlq)) == [b"retried", b"routed"]


def test_consumer_refuses_to_start_when_its_queue_exists_with_other_arguments(
    amqp_url, channel, consumer_name
):
    declare_topology(channel, consumer_name, ["a.b"], delivery_limit=3, retry_delays=[1])
    consumer = Consumer(amqp_url, consumer_name, ["a.b"], lambda event: None, delivery_limit=9)
    with pytest.raises(TopologyError, match="PRECONDITION_FAILED"):
        consumer.run()


def test_consumer_handles_events_within_their_correlation_context(amqp_url, consumer_name):
    from shared.context import correlation

    event_type = unique_type("user")
    seen = []

    def handler(event):
        seen.append((event.id, current_request_id(), current_traceparent()))

    consumer = Consumer(amqp_url, consumer_name, [event_type], handler)
    with correlation("req-7", TRACEPARENT):
        event = new_event(event_type, "/auth", {"user_id": 1})
    with running(consumer), Publisher(amqp_url) as publisher:
        # publish() is True once the consumer has declared its queue.
        wait_for(lambda: publisher.publish(event), timeout=15)
        wait_for(lambda: seen, timeout=15)
    assert seen == [(event.id, "req-7", TRACEPARENT)]


def test_a_poison_event_is_dead_lettered_after_its_retries_while_good_ones_flow(
    amqp_url, channel, consumer_name
):
    event_type = unique_type("order")
    attempts: dict[str, int] = {}
    poison = new_event(event_type, "/orders", {"poison": True})

    def handler(event):
        attempts[event.id] = attempts.get(event.id, 0) + 1
        if event.data.get("poison"):
            raise RuntimeError("cannot handle this one")

    declare_topology(
        channel, consumer_name, [event_type], delivery_limit=5, retry_delays=[0.05, 0.05]
    )
    good = [new_event(event_type, "/orders", {"n": n}) for n in range(20)]
    consumer = Consumer(amqp_url, consumer_name, [event_type], handler, retry_delays=(0.05, 0.05))
    with running(consumer), Publisher(amqp_url) as publisher:
        assert all(publisher.publish_batch([good[0], poison, *good[1:]]))
        wait_for(lambda: queue_depth(channel, dlq_name(consumer_name)) == 1, timeout=15)
        wait_for(lambda: all(attempts.get(e.id) == 1 for e in good), timeout=15)

    assert attempts[poison.id] == 3  # the first try and one per retry tier
    labels = {"consumer": consumer_name, "type": event_type}
    assert counter("events_failed_total", **labels) == 3  # every failed attempt
    assert counter("events_processed_total", **labels) == 20
    assert (
        counter("events_dead_lettered_total", consumer=consumer_name, reason="handler-failed") == 1
    )
    assert counter("events_redelivered_total", consumer=consumer_name) == 0  # retries are copies
    [(properties, body)] = drain(channel, dlq_name(consumer_name))
    assert json.loads(body)["id"] == poison.id
    assert properties.headers["x-dlq-reason"] == "handler-failed"
    assert properties.headers["x-retries"] == 2
    assert "RuntimeError: cannot handle this one" in properties.headers["x-error"]
    assert queue_depth(channel, queue_name(consumer_name)) == 0


def test_a_malformed_message_is_dead_lettered_and_never_stops_the_consumer(
    amqp_url, channel, consumer_name
):
    event_type = unique_type("order")
    handled = []
    declare_topology(channel, consumer_name, [event_type], delivery_limit=5, retry_delays=[0.05])
    consumer = Consumer(amqp_url, consumer_name, [event_type], handled.append, retry_delays=(0.05,))
    good = new_event(event_type, "/orders", {})
    with running(consumer), Publisher(amqp_url) as publisher:
        for body in (b"{not json", b'{"specversion": "1.0"}'):
            channel.basic_publish(EXCHANGE, event_type, body)
        assert publisher.publish(good)
        wait_for(lambda: handled, timeout=15)
        wait_for(lambda: queue_depth(channel, dlq_name(consumer_name)) == 2, timeout=15)

    assert [e.id for e in handled] == [good.id]
    assert counter("events_dead_lettered_total", consumer=consumer_name, reason="malformed") == 2
    assert counter("events_failed_total", consumer=consumer_name, type=event_type) == 0
    dead = drain(channel, dlq_name(consumer_name))
    assert [p.headers["x-dlq-reason"] for p, _ in dead] == ["malformed", "malformed"]
    assert "not JSON" in dead[0][0].headers["x-error"]


def test_an_event_its_handler_rejects_as_invalid_is_dead_lettered_without_retries(
    amqp_url, channel, consumer_name
):
    event_type = unique_type("user")
    attempts = []

    def handler(event):
        attempts.append(event.id)
        raise InvalidEvent("user_id missing")

    declare_topology(channel, consumer_name, [event_type], delivery_limit=5, retry_delays=[0.05])
    consumer = Consumer(amqp_url, consumer_name, [event_type], handler, retry_delays=(0.05,))
    event = new_event(event_type, "/auth", {})
    with running(consumer), Publisher(amqp_url) as publisher:
        assert publisher.publish(event)
        wait_for(lambda: queue_depth(channel, dlq_name(consumer_name)) == 1, timeout=15)

    assert attempts == [event.id]
    [(properties, _body)] = drain(channel, dlq_name(consumer_name))
    assert properties.headers["x-dlq-reason"] == "invalid-data"
    assert counter("events_dead_lettered_total", consumer=consumer_name, reason="invalid-data") == 1


def test_a_delivery_the_broker_had_handed_out_before_is_counted_as_redelivered(
    amqp_url, channel, consumer_name
):
    event_type = unique_type("user")
    declare_topology(channel, consumer_name, [event_type], delivery_limit=5, retry_delays=[1])
    first, second = new_event(event_type, "/auth", {}), new_event(event_type, "/auth", {})
    with Publisher(amqp_url) as publisher:
        assert publisher.publish_batch([first, second]) == [True, True]
    # Another consumer takes the first message and dies before its ack.
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        method, _properties, _body = connection.channel().basic_get(
            queue_name(consumer_name), auto_ack=False
        )
        assert method is not None
    handled = []
    consumer = Consumer(amqp_url, consumer_name, [event_type], handled.append, retry_delays=[1])
    # The series exists from the start, at 0, so alerts on its rate see it.
    assert REGISTRY.get_sample_value("events_redelivered_total", {"consumer": consumer_name}) == 0
    with running(consumer):
        wait_for(lambda: len(handled) == 2, timeout=15)

    assert sorted(e.id for e in handled) == sorted([first.id, second.id])
    assert counter("events_redelivered_total", consumer=consumer_name) == 1


def test_a_crash_looping_delivery_is_dead_lettered_by_the_delivery_limit(amqp_url, consumer_name):
    # A consumer that dies mid-handler never acks: closing the channel without an ack is
    # exactly what the broker sees then. The quorum queue counts those redeliveries.
    params = pika.URLParameters(amqp_url)
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        declare_topology(channel, consumer_name, ["crash.loop"], delivery_limit=2, retry_delays=[])
        event = new_event("crash.loop", "/orders", {})
        channel.basic_publish(EXCHANGE, "crash.loop", event.to_json())

    deliveries = 0
    for _ in range(10):
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            method, _props, _body = channel.basic_get(queue_name(consumer_name), auto_ack=False)
            if method is None:
                if queue_depth(channel, dlq_name(consumer_name)) == 1:
                    break
                continue
            deliveries += 1
            # The connection closes here without an ack: the crash.

    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        [(properties, body)] = drain(channel, dlq_name(consumer_name))
    assert json.loads(body)["id"] == event.id
    assert deliveries == 3  # delivery_limit redeliveries after the first delivery
    assert properties.headers["x-first-death-reason"] == "delivery_limit"


@pytest.mark.chaos
def test_consumer_reconnects_after_a_broker_outage_and_keeps_consuming(second_rabbit):
    event_type = unique_type("user")
    handled = []
    consumer = Consumer(
        second_rabbit.url, "outage", [event_type], handled.append, max_reconnect_delay=0.5
    )
    with running(consumer), Publisher(second_rabbit.url) as publisher:
        wait_for(lambda: publisher.publish(new_event(event_type, "/auth", {"n": 1})), timeout=15)
        wait_for(lambda: len(handled) == 1, timeout=15)

        second_rabbit.stop_app()
        second_rabbit.start_app()

        after = new_event(event_type, "/auth", {"n": 2})
        wait_for(lambda: publisher.publish(after), timeout=30)
        wait_for(lambda: len(handled) == 2, timeout=30)
    assert handled[-1].id == after.id
