"""Concurrent changes: optimistic concurrency on one order, placements against deactivations."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from services.orders import catalogue, customers, idempotency, services
from services.orders.models import Customer, Order, Outbox, Product, db
from services.orders.tests.helpers import rows
from shared.errors import ConflictError, ForbiddenError
from shared.uow import commit_forbidden

pytestmark = pytest.mark.integration

Headers = dict[str, str]


def _waiting_on_locks(conn: sa.Connection) -> int:
    return int(
        conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    )


def race(
    app: Flask, order_id: str, requests_to_send: list[Callable[[], requests.Response]]
) -> list[requests.Response]:
    """Send the requests at once and let them go only when all wait inside their UPDATE.

    A row lock held here parks every request's conditional UPDATE of the order; once all
    are parked (both read the same version by then), the lock is released and they race.
    """
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def send(request: Callable[[], requests.Response]) -> None:
        response = request()
        with lock:
            answers.append(response)

    with app.app_context():
        engine = db.engine
    with engine.connect() as blocker, engine.connect() as observer:
        blocker.execute(
            sa.text("SELECT 1 FROM orders WHERE id = :id FOR UPDATE"), {"id": uuid.UUID(order_id)}
        )
        threads = [threading.Thread(target=send, args=(r,)) for r in requests_to_send]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while _waiting_on_locks(observer) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.02)
            observer.rollback()  # a fresh snapshot of pg_stat_activity
        assert _waiting_on_locks(observer) == len(threads), "requests never reached the UPDATE"
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def post(url: str, headers: Headers, body: dict[str, Any] | None = None) -> Callable[[], Any]:
    """A deferred POST."""
    return lambda: requests.post(url, json=body, headers=headers, timeout=30)


def test_two_concurrent_changes_from_the_same_etag_give_one_200_and_one_412(
    app: Flask,
    live_server: str,
    place: Callable[..., dict[str, Any]],
    alice: Headers,
    admin: Headers,
) -> None:
    order = place(alice)
    url = f"{live_server}/api/v1/orders/{order['id']}"
    same_etag = {**admin, "If-Match": f'"{order["id"]}-1"'}
    answers = race(
        app,
        order["id"],
        [
            post(f"{url}/status", same_etag, {"status": "confirmed"}),
            post(f"{url}/cancel", same_etag),
        ],
    )
    assert sorted(a.status_code for a in answers) == [200, 412]
    winner = next(a for a in answers if a.status_code == 200).json()
    [stored] = rows(app, Order)
    assert (stored.status, stored.version) == (winner["status"], 2)
    changes = [o for o in rows(app, Outbox) if o.type == "order.status_changed"]
    assert [c.payload["data"]["to"] for c in changes] == [winner["status"]]


def test_two_concurrent_status_changes_from_the_same_etag_give_one_200_and_one_412(
    app: Flask,
    live_server: str,
    place: Callable[..., dict[str, Any]],
    alice: Headers,
    admin: Headers,
) -> None:
    order = place(alice)
    url = f"{live_server}/api/v1/orders/{order['id']}/status"
    same_etag = {**admin, "If-Match": f'"{order["id"]}-1"'}
    answers = race(
        app,
        order["id"],
        [
            post(url, same_etag, {"status": "confirmed"}),
            post(url, same_etag, {"status": "cancelled"}),
        ],
    )
    assert sorted(a.status_code for a in answers) == [200, 412]
    winner = next(a for a in answers if a.status_code == 200)
    loser = next(a for a in answers if a.status_code == 412)
    assert winner.headers["ETag"] == f'"{order["id"]}-2"'
    assert loser.headers["Content-Type"].startswith("application/problem+json")
    [stored] = rows(app, Order)
    assert (stored.status, stored.version) == (winner.json()["status"], 2)
    changes = [o for o in rows(app, Outbox) if o.type == "order.status_changed"]
    assert [c.payload["data"]["to"] for c in changes] == [winner.json()["status"]]


def test_without_if_match_the_loser_of_a_race_is_rechecked_against_the_new_state(
    app: Flask,
    live_server: str,
    place: Callable[..., dict[str, Any]],
    alice: Headers,
    admin: Headers,
) -> None:
    order = place(alice)
    url = f"{live_server}/api/v1/orders/{order['id']}"
    answers = race(
        app,
        order["id"],
        [post(f"{url}/status", admin, {"status": "confirmed"}), post(f"{url}/cancel", alice)],
    )
    # Whichever ran first, cancelling stays legal after confirming, and confirming is not
    # legal after cancelling: the outcome depends on the order, never a lost update.
    codes = sorted(a.status_code for a in answers)
    [stored] = rows(app, Order)
    changes = [o.payload["data"] for o in rows(app, Outbox) if o.type == "order.status_changed"]
    if codes == [200, 200]:
        assert (stored.status, stored.version) == ("cancelled", 3)
        assert [(c["from"], c["to"]) for c in changes] == [
            ("pending", "confirmed"),
            ("confirmed", "cancelled"),
        ]
    else:
        assert codes == [200, 409]
        assert (stored.status, stored.version) == ("cancelled", 2)
        assert [(c["from"], c["to"]) for c in changes] == [("pending", "cancelled")]


# -- placing an order while the user is deactivated -----------------------------------------

ZED = "user-zed"
ONE_ITEM = services.NewOrder("EUR", (services.NewItem("BOOK-1", 1),))


def _created(order: Order) -> services.StoredResponse:
    return services.StoredResponse(status=201, body={"id": str(order.id)})


def _wait_until_blocked_or_done(engine: sa.Engine, thread: threading.Thread) -> None:
    """Until `thread` waits on a lock held by the test's other session, or has finished."""
    with engine.connect() as observer:
        deadline = time.monotonic() + 10
        while thread.is_alive() and not _waiting_on_locks(observer):
            assert time.monotonic() < deadline, "the other session neither blocked nor finished"
            time.sleep(0.02)
            observer.rollback()  # a fresh snapshot of pg_stat_activity


def _register(engine: sa.Engine) -> None:
    with Session(engine) as session:
        customers.record_customer(
            session=session, user_id=ZED, email="z@x.org", name="Zed", version=1
        )
        session.commit()


@pytest.mark.parametrize("registered", [False, True], ids=["no-customer-row-yet", "registered"])
def test_a_deactivation_during_a_placement_waits_for_it_and_cancels_the_order(
    app: Flask, registered: bool
) -> None:
    with app.app_context():
        engine = db.engine
    if registered:
        _register(engine)
    cancelled: list[uuid.UUID] = []

    def deactivate() -> None:
        with Session(engine) as session:
            orders = customers.deactivate_customer(session=session, user_id=ZED, version=2)
            cancelled.extend(o.id for o in orders)
            session.commit()

    deactivation = threading.Thread(target=deactivate)

    def render_while_deactivating(order: Order) -> services.StoredResponse:
        # Called after the placement checked the customer and before it commits.
        deactivation.start()
        _wait_until_blocked_or_done(engine, deactivation)
        return _created(order)

    with Session(engine) as session:
        services.place_order(
            session=session,
            actor=services.Actor(ZED),
            new_order=ONE_ITEM,
            render=render_while_deactivating,
        )
        session.commit()
    deactivation.join(timeout=30)
    assert not deactivation.is_alive()

    [stored] = rows(app, Order)
    assert stored.status == "cancelled"
    assert cancelled == [stored.id]
    assert [o.type for o in rows(app, Outbox)] == ["order.created", "order.status_changed"]
    assert [c.active for c in rows(app, Customer)] == [False]


@pytest.mark.parametrize("registered", [False, True], ids=["no-customer-row-yet", "registered"])
def test_a_placement_during_a_deactivation_waits_for_it_and_is_refused(
    app: Flask, registered: bool
) -> None:
    with app.app_context():
        engine = db.engine
    if registered:
        _register(engine)
    outcome: list[BaseException | services.Placement] = []

    def place() -> None:
        with Session(engine) as session:
            try:
                outcome.append(
                    services.place_order(
                        session=session,
                        actor=services.Actor(ZED),
                        new_order=ONE_ITEM,
                        render=_created,
                    )
                )
                session.commit()
            except Exception as exc:
                outcome.append(exc)

    placement = threading.Thread(target=place)
    with Session(engine) as deactivation:
        # Not committed yet.
        customers.deactivate_customer(session=deactivation, user_id=ZED, version=2)
        placement.start()
        _wait_until_blocked_or_done(engine, placement)
        deactivation.commit()
    placement.join(timeout=30)
    assert not placement.is_alive()

    [refused] = outcome
    assert isinstance(refused, ForbiddenError)
    assert rows(app, Order) == [] and rows(app, Outbox) == []
    assert [c.active for c in rows(app, Customer)] == [False]


# -- two admins adding one SKU at once -------------------------------------------------------


def test_of_two_admins_adding_one_sku_at_once_one_adds_it_and_the_other_gets_409(
    app: Flask,
) -> None:
    with app.app_context():
        engine = db.engine
    lamp = catalogue.NewProduct("LAMP-1", "Desk lamp", 4500, "EUR")
    dearer = catalogue.NewProduct("LAMP-1", "Desk lamp", 9900, "EUR")
    admin = services.Actor("user-admin", is_admin=True)
    outcome: list[BaseException | Product] = []

    def add_the_same_sku() -> None:
        with Session(engine) as session:
            try:
                outcome.append(
                    catalogue.create_product(session=session, actor=admin, product=dearer)
                )
                session.commit()
            except Exception as exc:
                outcome.append(exc)

    second = threading.Thread(target=add_the_same_sku)
    with Session(engine) as first:
        catalogue.create_product(session=first, actor=admin, product=lamp)  # not committed yet
        second.start()
        _wait_until_blocked_or_done(engine, second)
        first.commit()
    second.join(timeout=30)
    assert not second.is_alive()

    [refused] = outcome
    assert isinstance(refused, ConflictError)
    assert [(p.sku, p.unit_price_cents) for p in rows(app, Product) if p.sku == "LAMP-1"] == [
        ("LAMP-1", 4500)
    ]


def test_no_use_case_commits_the_transaction_of_its_caller(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
    admin = services.Actor("user-admin", is_admin=True)
    with Session(engine) as session, commit_forbidden(session):
        customers.record_customer(
            session=session, user_id=ZED, email="z@x.org", name="Zed", version=1
        )
        customers.update_customer_profile(
            session=session, user_id=ZED, email="z@x.org", name="Zoe", version=2
        )
        first, second = (
            services.place_order(
                session=session,
                actor=services.Actor(ZED),
                new_order=ONE_ITEM,
                render=_created,
                idempotency_key=key,
            )
            for key in ("k-1", "k-2")
        )
        first_id = uuid.UUID(first.response.body["id"])
        services.change_order_status(
            session=session, actor=admin, order_id=first_id, status="confirmed"
        )
        services.cancel_order(session=session, actor=admin, order_id=first_id)
        customers.deactivate_customer(session=session, user_id=ZED, version=3)
        customers.reactivate_customer(session=session, user_id=ZED, version=4)
        idempotency.purge_expired_idempotency_keys(session=session)
        # Nothing was committed: the whole run is still one open transaction.
        with Session(engine) as other:
            assert other.scalar(sa.select(sa.func.count()).select_from(Order)) == 0
    assert second.response.status == 201
