"""Contract tests: what each producer really publishes, each consumer really accepts.

One row per producer (the real use case, on the real PostgreSQL, its outbox row read back)
and one per consumer (the handler its worker runs: the inbox transaction of orders and
notifications, the gateway's revocation handler), then every pair the catalogue and the
subscriptions make. The lists below are the whole map of who talks to whom.

A type the catalogue defines before anyone produces it joins on its own: as soon as a
service builds it, `test_every_type_a_service_publishes_has_a_producer_case` fails until
its producer case is added to PRODUCERS below, and from then on every consumer that
subscribes to it is checked against what it really gets.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import flask_migrate
import pytest
import sqlalchemy as sa
import yaml
from flask import Flask

from gateway import revocation
from services.auth import models as auth_models
from services.auth import registration as auth_registration
from services.auth import users as auth_users
from services.auth.models import Outbox as AuthOutbox
from services.auth.models import db as auth_db
from services.auth.tests.conftest import deps_of, make_app, migrate
from services.notifications.handlers import CONSUMER as NOTIFICATIONS
from services.notifications.handlers import HANDLERS as NOTIFICATIONS_HANDLERS
from services.notifications.models import Inbox as NotificationsInbox
from services.notifications.models import db as notifications_db
from services.notifications.tests.conftest import TokenMaker
from services.notifications.tests.conftest import make_app as make_notifications_app
from services.orders import MIGRATIONS_DIR as ORDERS_MIGRATIONS
from services.orders import catalogue as orders_catalogue
from services.orders import create_app as create_orders_app
from services.orders import services as orders_services
from services.orders.cli import DEMO_PRODUCTS
from services.orders.handlers import CONSUMER as ORDERS
from services.orders.handlers import HANDLERS as ORDERS_HANDLERS
from services.orders.handlers import event_handler as orders_event_handler
from services.orders.models import Outbox as OrdersOutbox
from services.orders.models import db as orders_db
from shared import broker_users, contracts
from shared.events import Event, parse_event
from shared.inbox import inbox_handler
from tests.contracts.asyncapi_check import validate_against_asyncapi

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


@dataclass
class World:
    """The producing services' apps on their own PostgreSQL databases."""

    auth: Flask
    orders: Flask
    notifications: Flask


def last_published(app: Flask, db: Any, outbox: Any, event_type: str) -> Event:
    """The newest outbox row of `event_type`, as the relay would publish it."""
    with app.app_context():
        payload = db.session.scalars(
            sa.select(outbox.payload).where(outbox.type == event_type).order_by(outbox.id.desc())
        ).first()
    assert payload is not None, f"the use case recorded no {event_type}"
    return parse_event(json.dumps(payload))


# -- producers: the real use cases --------------------------------------------------------


def _register(world: World, email: str) -> None:
    # Registration does not commit: its entry point (the view) does.
    with world.auth.app_context():
        auth_registration.register_user(
            session=auth_db.session(),
            deps=deps_of(world.auth),
            email=email,
            password=PASSWORD,
            name="Ada Lovelace",
        )
        auth_db.session.commit()


def _auth_event(world: World, event_type: str) -> Event:
    return last_published(world.auth, auth_db, AuthOutbox, event_type)


def user_registered(world: World) -> Event:
    """auth: a registration."""
    _register(world, f"{uuid.uuid4().hex[:8]}@example.com")
    return _auth_event(world, "user.registered")


def user_verification_requested(world: World) -> Event:
    """auth: the link mailed at registration."""
    _register(world, f"{uuid.uuid4().hex[:8]}@example.com")
    return _auth_event(world, "user.verification_requested")


def user_registration_attempted(world: World) -> Event:
    """auth: someone registers an address that is taken."""
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    _register(world, email)
    _register(world, email)
    return _auth_event(world, "user.registration_attempted")


def user_email_verified(world: World) -> Event:
    """auth: the owner follows the mailed link."""
    link = user_verification_requested(world).data["verify_url"]
    [token] = parse_qs(urlsplit(link).query)["token"]
    with world.auth.app_context():
        auth_registration.verify_email(
            session=auth_db.session(), deps=deps_of(world.auth), token=token
        )
        auth_db.session.commit()
    return _auth_event(world, "user.email_verified")


def _admin_changes(world: World, **change: Any) -> str:
    """An admin changes a new user (active=..., role=...); returns the user's id."""
    user_id = str(user_registered(world).data["user_id"])
    with world.auth.app_context():
        admin = auth_registration.create_admin(
            session=auth_db.session(),
            deps=deps_of(world.auth),
            email=f"admin-{uuid.uuid4().hex[:8]}@example.com",
            password=PASSWORD,
            name="Admin",
        )
        auth_db.session.commit()
        auth_users.update_user(
            session=auth_db.session(),
            deps=deps_of(world.auth),
            actor_id=str(admin.id),
            user_id=user_id,
            **change,
        )
        auth_db.session.commit()
    return user_id


def user_deactivated(world: World) -> Event:
    """auth: an admin deactivates a user."""
    _admin_changes(world, active=False)
    return _auth_event(world, "user.deactivated")


def user_reactivated(world: World) -> Event:
    """auth: an admin re-activates a deactivated user."""
    user_id = _admin_changes(world, active=False)
    with world.auth.app_context():
        admin_id = auth_db.session.scalar(
            sa.select(auth_models.User.id).where(auth_models.User.role == "admin").limit(1)
        )
        auth_users.update_user(
            session=auth_db.session(),
            deps=deps_of(world.auth),
            actor_id=str(admin_id),
            user_id=user_id,
            active=True,
        )
        auth_db.session.commit()
    return _auth_event(world, "user.reactivated")


def user_role_changed(world: World) -> Event:
    """auth: an admin promotes a user."""
    _admin_changes(world, role="admin")
    return _auth_event(world, "user.role_changed")


def user_profile_changed(world: World) -> Event:
    """auth: a user changes their name."""
    user_id = str(user_registered(world).data["user_id"])
    with world.auth.app_context():
        auth_users.update_profile(
            session=auth_db.session(), deps=deps_of(world.auth), user_id=user_id, name="Ada King"
        )
        auth_db.session.commit()
    return _auth_event(world, "user.profile_changed")


def _place_order(world: World) -> Event:
    with world.orders.app_context():
        orders_services.place_order(
            session=orders_db.session(),
            actor=orders_services.Actor(user_id=f"user-{uuid.uuid4().hex[:8]}"),
            new_order=orders_services.NewOrder(
                currency="EUR",
                items=(orders_services.NewItem(sku="BOOK-1", quantity=2),),
            ),
            render=lambda order: orders_services.StoredResponse(status=201, body={}),
        )
        orders_db.session.commit()  # the entry point owns the transaction
    return last_published(world.orders, orders_db, OrdersOutbox, "order.created")


def order_created(world: World) -> Event:
    """orders: a customer places an order."""
    return _place_order(world)


def order_status_changed(world: World) -> Event:
    """orders: an admin confirms an order."""
    order_id = uuid.UUID(_place_order(world).data["order_id"])
    with world.orders.app_context():
        orders_services.change_order_status(
            session=orders_db.session(),
            actor=orders_services.Actor(user_id="admin", is_admin=True),
            order_id=order_id,
            status="confirmed",
        )
        orders_db.session.commit()
    return last_published(world.orders, orders_db, OrdersOutbox, "order.status_changed")


# Every type some service publishes, and the use case that publishes it.
PRODUCERS: dict[str, Callable[[World], Event]] = {
    "user.registered": user_registered,
    "user.verification_requested": user_verification_requested,
    "user.registration_attempted": user_registration_attempted,
    "user.email_verified": user_email_verified,
    "user.deactivated": user_deactivated,
    "user.reactivated": user_reactivated,
    "user.role_changed": user_role_changed,
    "user.profile_changed": user_profile_changed,
    "order.created": order_created,
    "order.status_changed": order_status_changed,
}

# -- consumers: the handler each worker runs, and the types its queue is bound to ----------


def orders_consumer(world: World) -> Callable[[Event], None]:
    """orders' consumer handler (inbox + handler + commit)."""
    return orders_event_handler(world.orders)


def notifications_consumer(world: World) -> Callable[[Event], None]:
    """notifications' consumer handler (inbox + handler + commit)."""
    return inbox_handler(
        world.notifications,
        notifications_db,
        NotificationsInbox,
        NOTIFICATIONS,
        NOTIFICATIONS_HANDLERS,
    )


def gateway_consumer(world: World) -> Callable[[Event], None]:
    """The gateway's revocation handler (the same with Redis or in memory)."""
    return revocation.user_deactivated_handler(revocation.MemoryRevocationStore(1020))


CONSUMERS: dict[str, tuple[tuple[str, ...], Callable[[World], Callable[[Event], None]]]] = {
    ORDERS: (tuple(ORDERS_HANDLERS), orders_consumer),
    NOTIFICATIONS: (tuple(NOTIFICATIONS_HANDLERS), notifications_consumer),
    contracts.GATEWAY: (revocation.REVOKING_EVENTS, gateway_consumer),
}

PAIRS = [
    (event_type, consumer)
    for consumer, (subscribed, _) in CONSUMERS.items()
    for event_type in subscribed
    if event_type in PRODUCERS
]


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(
    database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """auth, orders and notifications, each on a fresh, migrated PostgreSQL database."""
    base = tmp_path_factory.mktemp("contracts")
    auth = make_app(
        database_factory("contracts_auth"),
        base / "keys",
        AUTH_ARGON2_TIME_COST=1,
        AUTH_ARGON2_MEMORY_KIB=1024,
    )
    migrate(auth)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APP_ENV", "test")
        orders = create_orders_app(
            {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_factory("contracts_orders")}
        )
    with orders.app_context():
        flask_migrate.upgrade(directory=ORDERS_MIGRATIONS)
        # Orders are priced from the catalogue: the demo products make BOOK-1 orderable.
        orders_catalogue.seed_products(session=orders_db.session(), products=DEMO_PRODUCTS)
        orders_db.session.commit()
    notifications = make_notifications_app(
        database_factory("contracts_notifications"), base, TokenMaker().verifier()
    )
    with notifications.app_context():
        flask_migrate.upgrade()
    yield World(auth=auth, orders=orders, notifications=notifications)
    for app, db in ((auth, auth_db), (orders, orders_db), (notifications, notifications_db)):
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture(scope="module")
def asyncapi_document() -> dict[str, Any]:
    """The checked-in AsyncAPI document (the gateway serves the same)."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    return loaded


# -- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize(("event_type", "consumer"), PAIRS, ids=[f"{t}->{c}" for t, c in PAIRS])
def test_what_the_producer_publishes_the_consumer_accepts(
    world: World, event_type: str, consumer: str
) -> None:
    event = PRODUCERS[event_type](world)
    handle = CONSUMERS[consumer][1](world)

    # Declared for the version produced: otherwise it would acknowledge the event unread.
    assert consumer in contracts.CATALOGUE.contract_of(event).consumers
    handle(event)  # raises InvalidEvent (the consumer would dead-letter it) on any mismatch


@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
def test_a_consumer_subscribes_only_to_types_someone_produces(consumer: str) -> None:
    subscribed = set(CONSUMERS[consumer][0])

    assert subscribed - set(PRODUCERS) == set(), f"{consumer} waits for events nobody sends"


@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
def test_a_consumer_subscribes_only_to_what_the_catalogue_says_it_consumes(consumer: str) -> None:
    # The AsyncAPI document's queues come from the catalogue: it must match the bindings.
    assert set(CONSUMERS[consumer][0]) <= set(contracts.CATALOGUE.consumed_by(consumer))


@pytest.mark.parametrize("event_type", sorted(PRODUCERS))
def test_every_produced_event_is_described_by_the_asyncapi_document(
    world: World, asyncapi_document: dict[str, Any], event_type: str
) -> None:
    event = PRODUCERS[event_type](world)

    assert event.type in asyncapi_document["channels"], f"no channel for {event.type}"
    validate_against_asyncapi(json.loads(event.to_json()), asyncapi_document)


def _producer_source(producer: str) -> dict[Path, str]:
    """The non-test Python files of the service behind a source ("/auth" -> services/auth)."""
    service = ROOT / "services" / producer.strip("/")
    return {
        path: path.read_text()
        for path in sorted(service.rglob("*.py"))
        if "tests" not in path.relative_to(service).parts
    }


def test_every_type_a_service_publishes_has_a_producer_case() -> None:
    # Built through the catalogue (its dataclass) or, against the rules, by its name.
    unlisted = {}
    for event_type in contracts.CATALOGUE.types:
        if event_type in PRODUCERS:
            continue
        versions = contracts.CATALOGUE.versions(event_type)
        patterns = [rf"\b{c.data.__name__}\(" for c in versions]
        patterns.append(rf"[\"']{re.escape(event_type)}[\"']")
        builders = [
            str(path.relative_to(ROOT))
            for path, text in _producer_source(versions[0].producer).items()
            if any(re.search(pattern, text) for pattern in patterns)
        ]
        if builders:
            unlisted[event_type] = builders
    assert unlisted == {}, "published without a producer case in PRODUCERS of this module"


@pytest.mark.parametrize("contract", contracts.CATALOGUE.contracts, ids=lambda c: c.key)
def test_the_broker_lets_the_producer_publish_and_each_consumer_bind_the_type(
    contract: contracts.Contract[Any],
) -> None:
    # shared.broker_users grants the topic permissions; the catalogue says who needs them.
    producer = broker_users.user(contract.producer.strip("/"))
    assert re.search(producer.topic_write, contract.type), f"{producer.service} may not publish"
    for consumer in contract.consumers:
        granted = broker_users.user(consumer).topic_read
        assert re.search(granted, contract.type), f"{consumer} may not bind {contract.type}"
    for user in broker_users.USERS:
        if user.service != producer.service:
            assert not re.search(user.topic_write, contract.type), f"{user.service} may publish"
