"""Who a consumer believes published an event: the broker-validated user_id, and the producer
header only on copies made under the consumer's own user."""

from __future__ import annotations

import pika
import pytest

from shared import contracts
from shared.messaging import PRODUCER_HEADER, ProducerCheck, broker_user, original_producer
from shared.messaging.producers import service_user

URL = "amqp://test-1a2b-notifications:secret@127.0.0.1:5672/test-1a2b"
PRODUCERS = contracts.CATALOGUE.producer_services()


def message(user_id: str | None, **headers: str) -> pika.BasicProperties:
    return pika.BasicProperties(user_id=user_id, headers=headers)


@pytest.fixture
def check() -> ProducerCheck:
    return ProducerCheck.for_consumer(URL, "notifications", PRODUCERS)


def test_the_catalogue_names_each_types_producing_service() -> None:
    assert PRODUCERS["order.created"] == "orders"
    assert PRODUCERS["user.deactivated"] == "auth"


def test_each_producer_is_expected_under_the_consumers_naming() -> None:
    assert broker_user(URL) == "test-1a2b-notifications"
    assert service_user("notifications", "notifications", "orders") == "orders"
    assert service_user("test-1a2b-notifications", "notifications", "auth") == "test-1a2b-auth"
    # One user for every process (the local run): nobody to tell apart.
    assert service_user("guest", "notifications", "orders") == "guest"


def test_an_event_from_its_producers_user_is_accepted(check: ProducerCheck) -> None:
    assert check.refusal("order.created", message("test-1a2b-orders")) is None
    assert check.refusal("user.registered", message("test-1a2b-auth")) is None


@pytest.mark.parametrize(
    ("event_type", "properties"),
    [
        ("order.created", message("test-1a2b-auth")),
        ("order.created", message("test-1a2b-gateway")),
        ("order.created", message(None)),
        ("user.deactivated", message("test-1a2b-orders")),
        # Another user's claim to carry a copy is not believed.
        ("order.created", message("test-1a2b-gateway", **{PRODUCER_HEADER: "test-1a2b-orders"})),
        ("no.such.type", message("test-1a2b-orders")),
    ],
    ids=[
        "order event from auth",
        "order event from the gateway",
        "no user_id",
        "revocation from orders",
        "header from another user",
        "unknown type",
    ],
)
def test_anything_else_is_refused_with_a_reason(
    check: ProducerCheck, event_type: str, properties: pika.BasicProperties
) -> None:
    reason = check.refusal(event_type, properties)
    assert reason is not None
    assert event_type in reason


def test_a_copy_made_under_the_consumers_own_user_carries_the_original_producer(
    check: ProducerCheck,
) -> None:
    copy = message("test-1a2b-notifications", **{PRODUCER_HEADER: "test-1a2b-orders"})
    assert check.refusal("order.created", copy) is None
    # Its own copy of something it refused stays refused.
    refused = message("test-1a2b-notifications", **{PRODUCER_HEADER: "test-1a2b-gateway"})
    assert check.refusal("order.created", refused) is not None


def test_a_copy_records_the_user_it_read_not_a_senders_claim() -> None:
    own = "test-1a2b-notifications"
    claimed = message("test-1a2b-gateway", **{PRODUCER_HEADER: "test-1a2b-orders"})
    assert original_producer(claimed, own) == "test-1a2b-gateway"
    assert original_producer(message(None), own) == ""
    again = message(own, **{PRODUCER_HEADER: "test-1a2b-orders"})
    assert original_producer(again, own) == "test-1a2b-orders"
