"""Events in and out: the outbox commits with the change, auth's user events apply once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from services.orders import services
from services.orders.handlers import CONSUMER, HANDLERS, event_handler
from services.orders.models import Customer, Inbox, Order, Outbox, db
from services.orders.tests.helpers import ORDER_BODY_TOTAL, EventQueue, order_body, rows
from shared import contracts
from shared.events import Event, InvalidEvent
from shared.messaging import Consumer, Publisher, declare_topology
from tests.support import wait_for

pytestmark = pytest.mark.integration

Headers = dict[str, str]
Place = Callable[..., dict[str, Any]]


def user_event(type_: str, version: int = 1, **data: Any) -> Event:
    """An event as auth publishes it, about `version` of the user (by hand: tests also send
    what auth never would)."""
    return Event(
        type=type_,
        source="/auth",
        data={**data, "version": version},
        subject=data.get("user_id"),
        dataschema=contracts.dataschema(type_, 1),
    )


def apply(app: Flask, event: Event) -> None:
    """Hand one event to the service's consumer handler (inbox + handler + commit)."""
    event_handler(app)(event)


@pytest.fixture
def failing_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make writing an event fail after the change was written to the database."""

    def record_then_fail(session: Session, event: Event, *, model: Any) -> None:
        session.flush()  # the order (or its new status) really reaches the database...
        raise RuntimeError("simulated failure while writing the outbox row")

    monkeypatch.setattr(services, "record_event", record_then_fail)


def test_an_order_whose_event_cannot_be_written_is_not_created_either(
    app: Flask, client: FlaskClient, alice: Headers, failing_outbox: None
) -> None:
    response = client.post(
        "/api/v1/orders", json=order_body(), headers={**alice, "Idempotency-Key": "k-1"}
    )
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert "simulated" not in response.get_data(as_text=True)  # nothing internal leaks
    assert rows(app, Order) == []
    assert rows(app, Outbox) == []


def test_a_status_change_whose_event_cannot_be_written_changes_nothing(
    app: Flask,
    client: FlaskClient,
    place: Place,
    alice: Headers,
    admin: Headers,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    order = place(alice)
    request.getfixturevalue("failing_outbox")  # only now: placing the order must work
    response = client.post(
        f"/api/v1/orders/{order['id']}/status", json={"status": "confirmed"}, headers=admin
    )
    assert response.status_code == 500
    [stored] = rows(app, Order)
    assert (stored.status, stored.version) == ("pending", 1)
    assert [o.type for o in rows(app, Outbox)] == ["order.created"]


def test_a_cancellation_whose_event_cannot_be_written_changes_nothing(
    app: Flask,
    client: FlaskClient,
    place: Place,
    alice: Headers,
    request: pytest.FixtureRequest,
) -> None:
    order = place(alice)
    request.getfixturevalue("failing_outbox")
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=alice)
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    [stored] = rows(app, Order)
    assert (stored.status, stored.version) == ("pending", 1)
    assert [o.type for o in rows(app, Outbox)] == ["order.created"]


def test_a_deactivation_whose_events_cannot_be_written_changes_nothing_and_can_be_retried(
    app: Flask,
    place: Place,
    alice: Headers,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    registered = user_event("user.registered", user_id="user-alice", email="a@x.org", name="Al")
    apply(app, registered)
    orders = {place(alice)["id"], place(alice)["id"]}
    deactivated = user_event("user.deactivated", user_id="user-alice", version=2)
    request.getfixturevalue("failing_outbox")

    with pytest.raises(RuntimeError, match="simulated"):
        apply(app, deactivated)

    assert {(str(o.id), o.status, o.version) for o in rows(app, Order)} == {
        (order_id, "pending", 1) for order_id in orders
    }
    assert [o.type for o in rows(app, Outbox)] == ["order.created"] * 2
    assert [(c.active, c.email) for c in rows(app, Customer)] == [(True, "a@x.org")]
    assert [i.event_id for i in rows(app, Inbox)] == [registered.id]  # so it can be redelivered

    monkeypatch.undo()  # the outbox works again; the consumer redelivers the event
    apply(app, deactivated)
    assert {str(o.id): o.status for o in rows(app, Order)} == dict.fromkeys(orders, "cancelled")
    assert [c.active for c in rows(app, Customer)] == [False]


def test_order_events_reach_the_broker_with_the_contracted_data(
    client: FlaskClient,
    place: Place,
    alice: Headers,
    relay: Callable[[], int],
    order_events: EventQueue,
) -> None:
    order = place(alice)
    client.post(f"/api/v1/orders/{order['id']}/cancel", headers=alice)
    assert relay() == 2
    created, changed = order_events.wait_for(2)
    assert (created.type, created.source, created.subject) == (
        "order.created",
        "/orders",
        order["id"],
    )
    assert created.data == {
        "order_id": order["id"],
        "user_id": "user-alice",
        "status": "pending",
        "total_cents": ORDER_BODY_TOTAL,
        "currency": "EUR",
        # The data's shape is unchanged by the catalogue: each line carries its unit price.
        "items": [
            {"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250},
            {"sku": "PEN-7", "quantity": 1, "unit_price_cents": 199},
        ],
        "version": 1,
    }
    assert created.requestid  # the request id of the HTTP call travels with the event
    assert (changed.type, changed.subject) == ("order.status_changed", order["id"])
    assert changed.data == {
        "order_id": order["id"],
        "user_id": "user-alice",
        "from": "pending",
        "to": "cancelled",
        "version": 2,
    }


def test_a_registered_user_becomes_an_active_customer(app: Flask) -> None:
    apply(app, user_event("user.registered", user_id="u-1", email="a@example.org", name="Ann"))
    [customer] = rows(app, Customer)
    assert (customer.user_id, customer.email, customer.name, customer.active) == (
        "u-1",
        "a@example.org",
        "Ann",
        True,
    )


def test_a_user_the_service_has_not_heard_of_yet_may_still_order(
    client: FlaskClient, alice: Headers
) -> None:
    assert client.post("/api/v1/orders", json=order_body(), headers=alice).status_code == 201


def test_deactivation_cancels_open_orders_keeps_shipped_ones_and_refuses_new_orders(
    app: Flask, client: FlaskClient, place: Place, alice: Headers, bob: Headers, admin: Headers
) -> None:
    pending, confirmed, shipped = place(alice), place(alice), place(alice)
    bobs = place(bob)
    client.post(
        f"/api/v1/orders/{confirmed['id']}/status", json={"status": "confirmed"}, headers=admin
    )
    for status in ("confirmed", "shipped"):
        client.post(
            f"/api/v1/orders/{shipped['id']}/status", json={"status": status}, headers=admin
        )

    apply(app, user_event("user.deactivated", user_id="user-alice", version=2))

    status = {str(o.id): o.status for o in rows(app, Order)}
    assert status == {
        pending["id"]: "cancelled",
        confirmed["id"]: "cancelled",
        shipped["id"]: "shipped",
        bobs["id"]: "pending",
    }
    refused = client.post("/api/v1/orders", json=order_body(), headers=alice)
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert client.post("/api/v1/orders", json=order_body(), headers=bob).status_code == 201


def test_a_deactivation_that_arrives_before_the_registration_still_refuses_orders(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    apply(app, user_event("user.deactivated", user_id="user-alice", version=2))
    apply(app, user_event("user.registered", user_id="user-alice", email="a@x.org", name="Al"))
    [customer] = rows(app, Customer)
    assert (customer.email, customer.active) == ("a@x.org", False)
    assert client.post("/api/v1/orders", json=order_body(), headers=alice).status_code == 403


@pytest.mark.parametrize("sku", ["BOOK-1", "NO-SUCH-SKU"], ids=["known-sku", "unknown-sku"])
def test_a_deactivated_user_is_refused_with_403_whatever_the_order_names(
    app: Flask, client: FlaskClient, alice: Headers, sku: str
) -> None:
    apply(app, user_event("user.deactivated", user_id="user-alice", version=2))
    refused = client.post(
        "/api/v1/orders",
        json=order_body(items=[{"sku": sku, "quantity": 1}]),
        headers=alice,
    )
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert rows(app, Order) == []


def test_on_sqlite_placements_and_deactivations_work_as_under_make_run(
    sqlite_app: Flask, sqlite_client: FlaskClient, alice: Headers
) -> None:
    placed = sqlite_client.post("/api/v1/orders", json=order_body(), headers=alice)
    assert placed.status_code == 201  # before user.registered: the customer row is made
    apply(sqlite_app, user_event("user.deactivated", user_id="user-alice", version=2))
    order = sqlite_client.get(f"/api/v1/orders/{placed.get_json()['id']}", headers=alice)
    assert order.get_json()["status"] == "cancelled"
    refused = sqlite_client.post("/api/v1/orders", json=order_body(), headers=alice)
    assert refused.status_code == 403
    apply(
        sqlite_app, user_event("user.registered", user_id="user-alice", email="a@x.org", name="A")
    )
    assert [(c.email, c.active) for c in rows(sqlite_app, Customer)] == [("a@x.org", False)]
    assert sqlite_client.post("/api/v1/orders", json=order_body(), headers=alice).status_code == 403


@pytest.mark.parametrize(
    "data", [{}, {"user_id": ""}, {"user_id": 42}, {"user_id": "u" * 65}], ids=str
)
def test_a_user_event_with_unusable_data_is_refused_and_changes_nothing(
    app: Flask, data: dict[str, Any]
) -> None:
    with pytest.raises(InvalidEvent):
        apply(app, user_event("user.deactivated", **data))
    assert rows(app, Customer) == [] and rows(app, Inbox) == []


def test_user_deactivated_delivered_twice_through_the_broker_cancels_once(
    app: Flask, amqp_url: str, place: Place, alice: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shared.inbox")
    orders = {place(alice)["id"], place(alice)["id"]}
    deactivated = user_event("user.deactivated", user_id="user-alice", version=2)
    # The last event only marks the end of the run: one consumer handles in queue order.
    marker = user_event("user.registered", user_id="u-marker", email="m@x.org", name="M")
    settings = {
        "delivery_limit": app.config["EVENT_DELIVERY_LIMIT"],
        "retry_delays": app.config["EVENT_RETRY_DELAYS"],
    }
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        declare_topology(connection.channel(), CONSUMER, list(HANDLERS), **settings)
    finally:
        connection.close()
    with Publisher(amqp_url) as publisher:
        assert publisher.publish_batch([deactivated, deactivated, marker]) == [True] * 3

    consumer = Consumer(amqp_url, CONSUMER, list(HANDLERS), event_handler(app), **settings)
    thread = threading.Thread(target=consumer.run, name="orders-consumer")
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            c.user_id == "u-marker" for c in rows(app, Customer)
        ):
            time.sleep(0.05)
    finally:
        consumer.stop()
        thread.join(timeout=15)
    assert not thread.is_alive()

    assert {str(o.id): o.status for o in rows(app, Order)} == dict.fromkeys(orders, "cancelled")
    changes = [o.payload for o in rows(app, Outbox) if o.type == "order.status_changed"]
    assert sorted(c["data"]["order_id"] for c in changes) == sorted(orders)
    assert all(c["source"] == "/orders" and c["data"]["to"] == "cancelled" for c in changes)
    assert sorted(i.event_id for i in rows(app, Inbox)) == sorted([deactivated.id, marker.id])
    duplicates = [r for r in caplog.records if r.getMessage() == "duplicate event ignored"]
    assert [getattr(r, "event_id", None) for r in duplicates] == [deactivated.id]
    with app.app_context():
        assert db.session.get(Customer, "user-alice").active is False  # type: ignore[union-attr]


def test_a_reactivated_customer_may_order_again(
    app: Flask, client: FlaskClient, alice: Headers
) -> None:
    apply(app, user_event("user.registered", user_id="user-alice", email="a@x.org", name="Al"))
    apply(app, user_event("user.deactivated", user_id="user-alice", version=2))
    assert client.post("/api/v1/orders", json=order_body(), headers=alice).status_code == 403
    apply(app, user_event("user.reactivated", user_id="user-alice", version=3))
    assert client.post("/api/v1/orders", json=order_body(), headers=alice).status_code == 201


def test_a_profile_change_reaches_the_customer(app: Flask) -> None:
    apply(app, user_event("user.registered", user_id="u-1", email="a@x.org", name="Ann"))
    apply(
        app,
        user_event("user.profile_changed", user_id="u-1", email="a@x.org", name="Anne", version=2),
    )
    [customer] = rows(app, Customer)
    assert (customer.name, customer.profile_version) == ("Anne", 2)


def test_user_events_out_of_order_leave_the_customer_as_the_latest_version_says(
    app: Flask, client: FlaskClient, place: Place, alice: Headers
) -> None:
    registered = user_event("user.registered", user_id="user-alice", email="a@x.org", name="Al")
    reactivated = user_event("user.reactivated", user_id="user-alice", version=2)
    deactivated = user_event("user.deactivated", user_id="user-alice", version=3)
    order = place(alice)

    # v3 first, then the late v2, then v1 twice (a redelivery and a copy with a new id).
    for event in (deactivated, reactivated, registered, user_event(**_as_new(registered))):
        apply(app, event)

    [customer] = rows(app, Customer)
    assert (customer.active, customer.active_version) == (False, 3)
    assert (customer.email, customer.name, customer.profile_version) == ("a@x.org", "Al", 1)
    assert {str(o.id): o.status for o in rows(app, Order)} == {order["id"]: "cancelled"}
    assert client.post("/api/v1/orders", json=order_body(), headers=alice).status_code == 403


def _as_new(event: Event) -> dict[str, Any]:
    """The arguments of user_event that make the same change again under a new event id."""
    data = dict(event.data)
    return {"type_": event.type, "version": data.pop("version"), **data}


def test_user_events_out_of_order_through_the_broker_leave_the_latest_state(
    app: Flask, amqp_url: str, place: Place, alice: Headers
) -> None:
    order = place(alice)
    registered = user_event("user.registered", user_id="user-alice", email="a@x.org", name="Al")
    reactivated = user_event("user.reactivated", user_id="user-alice", version=2)
    deactivated = user_event("user.deactivated", user_id="user-alice", version=3)
    marker = user_event("user.registered", user_id="u-marker", email="m@x.org", name="M")
    settings = {
        "delivery_limit": app.config["EVENT_DELIVERY_LIMIT"],
        "retry_delays": app.config["EVENT_RETRY_DELAYS"],
    }
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        declare_topology(connection.channel(), CONSUMER, list(HANDLERS), **settings)
    finally:
        connection.close()
    with Publisher(amqp_url) as publisher:
        published = publisher.publish_batch([deactivated, reactivated, registered, registered])
        assert published == [True] * 4
        assert publisher.publish_batch([marker]) == [True]

    consumer = Consumer(amqp_url, CONSUMER, list(HANDLERS), event_handler(app), **settings)
    thread = threading.Thread(target=consumer.run, name="orders-consumer")
    thread.start()
    try:
        wait_for(
            lambda: any(c.user_id == "u-marker" for c in rows(app, Customer)),
            timeout=15,
            what="the consumer reaching the last event",
        )
    finally:
        consumer.stop()
        thread.join(timeout=15)
    assert not thread.is_alive()

    with app.app_context():
        customer = db.session.get(Customer, "user-alice")
        assert customer is not None
        assert (customer.active, customer.active_version, customer.profile_version) == (
            False,
            3,
            1,
        )
    assert {str(o.id): o.status for o in rows(app, Order)} == {order["id"]: "cancelled"}
