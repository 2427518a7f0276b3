"""Placing and changing orders: the use cases that write orders. No Flask here: the API and
the event handlers call these.

Transactions: no use case commits or rolls back. Each adds its change and its outbox rows
to the caller's session, and the entry point ends the transaction (`shared.uow`): the API
view, the inbox handler (the inbox row, the change and its events commit at once), the
worker's purge loop.

The other jobs of the service live beside this module: the hot reads (`reads`), the product
catalogue (`catalogue`), the customer projection of auth's user events (`customers`) and the
answers kept for Idempotency-Keys (`idempotency`).
`Actor` is defined here, once, for all of them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from services.orders import idempotency
from services.orders.idempotency import DEFAULT_IDEMPOTENCY_TTL, StoredResponse
from services.orders.models import (
    Customer,
    Order,
    OrderItem,
    OrderStatus,
    Outbox,
    Product,
    can_transition,
)
from shared import contracts
from shared.db import rows_matched, upsert, utcnow
from shared.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PreconditionFailedError,
    ServiceUnavailableError,
    UnprocessableError,
)
from shared.events import Event
from shared.outbox import record_event

log = logging.getLogger(__name__)

# Without If-Match, a change that lost a race is re-checked against the new state this
# many times before giving up with 409.
TRANSITION_ATTEMPTS = 3


@dataclass(frozen=True)
class Actor:
    """Who asks: a user (sees own orders) or an admin (sees all)."""

    user_id: str
    is_admin: bool = False


@dataclass(frozen=True)
class NewItem:
    """One line of an order to place (already validated by the schema); priced at placement."""

    sku: str
    quantity: int


@dataclass(frozen=True)
class NewOrder:
    """An order to place (already validated by the schema)."""

    currency: str
    items: tuple[NewItem, ...]


@dataclass(frozen=True)
class CataloguePrice:
    """What an order line needs of its product: price, currency, whether it is sold."""

    unit_price_cents: int
    currency: str
    active: bool


@dataclass(frozen=True)
class Placement:
    """The answer to a create: a new order, or the replay of an earlier identical request."""

    response: StoredResponse
    replayed: bool


@dataclass(frozen=True)
class PlacedLine:
    """One line of an order being placed, priced from the catalogue."""

    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class PlacedOrder:
    """An order being placed: exactly the row written (nothing is read back after the INSERT)."""

    id: uuid.UUID
    user_id: str
    status: str
    currency: str
    total_cents: int
    version: int
    created_at: datetime
    updated_at: datetime
    items: tuple[PlacedLine, ...]

    def row(self) -> dict[str, Any]:
        """The `orders` row."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "status": self.status,
            "currency": self.currency,
            "total_cents": self.total_cents,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def item_parameters(self) -> dict[str, Any]:
        """The `order_items` rows as the parameters of `_insert_items(len(items))`."""
        parameters: dict[str, Any] = {}
        for n, line in enumerate(self.items):
            parameters[f"order_id_{n}"] = self.id
            parameters[f"position_{n}"] = n
            parameters[f"sku_{n}"] = line.sku
            parameters[f"quantity_{n}"] = line.quantity
            parameters[f"unit_price_cents_{n}"] = line.unit_price_cents
        return parameters


# -- placing orders ------------------------------------------------------------------------

ORDERS = cast(sa.Table, Order.__table__)
ITEMS = cast(sa.Table, OrderItem.__table__)
# Core, not ORM objects: the unit of work's flush (state tracking, cascades, relationship
# bookkeeping) cost more CPU than everything else placing an order does in Python.
_INSERT_ORDER = sa.insert(ORDERS)
_ITEM_COLUMNS_WRITTEN = ("order_id", "position", "sku", "quantity", "unit_price_cents")


@functools.cache
def _insert_items(lines: int) -> sa.Insert:
    """One multi-row INSERT of `lines` order lines, with bound parameters `<column>_<n>`.

    Built (and so compiled) once per number of lines: psycopg's executemany would send the
    rows through a pipeline, whose set-up costs more than the rows, and `.values(rows)`
    with the values themselves is compiled anew on every call.
    """
    return sa.insert(ITEMS).values(
        [
            {
                column: sa.bindparam(f"{column}_{n}", type_=ITEMS.c[column].type)
                for column in _ITEM_COLUMNS_WRITTEN
            }
            for n in range(lines)
        ]
    )


def request_fingerprint(new_order: NewOrder) -> str:
    """SHA-256 of the canonical JSON of a create request (key order and spacing ignored)."""
    canonical = json.dumps(
        {
            "currency": new_order.currency,
            "items": [{"sku": i.sku, "quantity": i.quantity} for i in new_order.items],
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def place_order(
    *,
    session: Session,
    actor: Actor,
    new_order: NewOrder,
    render: Callable[[PlacedOrder], StoredResponse],
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL,
) -> Placement:
    """Create a pending order and its order.created event; replay it for a repeated key.

    `render` turns the new order into the HTTP answer, which is stored with the key so a
    retry gets exactly the first answer, even after the order has moved on.

    The hot write path: Core statements on the session's connection, each built once, and
    nothing loaded back (the rows written are exactly the values sent). Without a key that
    is one read (the prices, and the customer's flag share-locked) and three inserts (the
    order, its lines in one multi-row INSERT, the outbox row); a key adds one read and one
    insert.
    """
    fingerprint = request_fingerprint(new_order)
    if idempotency_key is not None:
        earlier = idempotency.earlier_response(
            session, actor.user_id, idempotency_key, fingerprint, idempotency_ttl
        )
        if earlier is not None:
            return Placement(response=earlier, replayed=True)
    prices = _prices_for_customer(session, actor.user_id, new_order)
    order = _priced_order(actor, new_order, prices)
    response = render(order)
    if idempotency_key is not None and not idempotency.keep_response(
        session, actor.user_id, idempotency_key, fingerprint, response, order.created_at
    ):
        # Lost the race to a concurrent request with the same key: answer as it did.
        earlier = idempotency.earlier_response(
            session, actor.user_id, idempotency_key, fingerprint, idempotency_ttl
        )
        if earlier is None:
            # Its record expired and was deleted between our insert and this read: nothing
            # is left to answer with, and a new attempt will place the order.
            raise ServiceUnavailableError(
                "A concurrent request with this Idempotency-Key just ended; send this again.",
                headers={"Retry-After": "1"},
            )
        return Placement(response=earlier, replayed=True)
    connection = session.connection()
    connection.execute(_INSERT_ORDER, order.row())
    connection.execute(_insert_items(len(order.items)), order.item_parameters())
    record_event(session, _order_created(order), model=Outbox)
    return Placement(response=response, replayed=False)


def _refuse_deactivated_customer(session: Session, user_id: str) -> None:
    """403 once auth said the user is deactivated; a user not heard of yet may still order.

    Serialised with `deactivate_customer` through the user's customer row, which is made
    here when user.registered has not arrived yet: with no row, FOR SHARE would lock nothing
    and a concurrent deactivation could miss this order. FOR SHARE makes a concurrent
    deactivation (an upsert of the row) wait for this order to commit and then cancel it
    too, or makes this wait for the deactivation and refuse.
    """
    active = _customer_active_for_share(session, user_id)
    if active is None:
        # ON CONFLICT DO NOTHING: a deactivation that inserted the row first (not committed
        # yet) makes this wait for it, and the read below then sees the refusal.
        session.execute(
            upsert(session, Customer)
            .values(user_id=user_id, active=True, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=[Customer.user_id])
        )
        active = _customer_active_for_share(session, user_id)
    if active is False:
        _refuse_deactivated()


def _refuse_deactivated() -> NoReturn:
    raise ForbiddenError("This account is deactivated; it cannot place orders.")


CUSTOMERS = cast(sa.Table, Customer.__table__)
PRODUCTS = cast(sa.Table, Product.__table__)
_CUSTOMER_ACTIVE_FOR_SHARE = (
    sa.select(CUSTOMERS.c.active)
    .where(CUSTOMERS.c.user_id == sa.bindparam("user_id"))
    .with_for_update(read=True)
)


def _customer_active_for_share(session: Session, user_id: str) -> bool | None:
    """The customer's `active`, with the row share-locked until commit; None without a row."""
    active: bool | None = (
        session.connection().execute(_CUSTOMER_ACTIVE_FOR_SHARE, {"user_id": user_id}).scalar()
    )
    return active


# Built once: the IN list is an expanding parameter, so the statement is compiled and
# cached once whatever the number of lines. The customer's flag rides along as an
# uncorrelated subquery, which PostgreSQL runs once (an InitPlan), taking the same share
# lock as `_customer_active_for_share`: one round trip instead of two for every order.
_PRICES_FOR_CUSTOMER = sa.select(
    PRODUCTS.c.sku,
    PRODUCTS.c.unit_price_cents,
    PRODUCTS.c.currency,
    PRODUCTS.c.active,
    _CUSTOMER_ACTIVE_FOR_SHARE.scalar_subquery().label("customer_active"),
).where(PRODUCTS.c.sku.in_(sa.bindparam("skus", expanding=True)))


def _prices_for_customer(
    session: Session, user_id: str, new_order: NewOrder
) -> dict[str, CataloguePrice]:
    """403 for a deactivated customer, else the catalogue price of every line's sku.

    As `_refuse_deactivated_customer` then `_catalogue_prices`, in one query when it can:
    when no product matched (the subquery did not run) or the customer has no row yet,
    the customer is checked on its own first, so the answers are the same.
    """
    rows = (
        session.connection()
        .execute(
            _PRICES_FOR_CUSTOMER,
            {"user_id": user_id, "skus": [i.sku for i in new_order.items]},
        )
        .all()
    )
    if not rows or rows[0].customer_active is None:
        _refuse_deactivated_customer(session, user_id)
    elif rows[0].customer_active is False:
        _refuse_deactivated()
    return _catalogue_prices(new_order, rows)


def _catalogue_prices(new_order: NewOrder, rows: Sequence[Any]) -> dict[str, CataloguePrice]:
    """The catalogue price of every line's sku from its rows; 422 naming each line it refuses.

    A line is refused when its sku is unknown, withdrawn (inactive) or priced in another
    currency than the order's. The rows are read without a lock: an order is priced as
    the catalogue stood when it was placed, and locking the popular products' rows on
    every order would serialise the orders that name them.
    """
    prices = {
        row.sku: CataloguePrice(
            unit_price_cents=row.unit_price_cents, currency=row.currency, active=row.active
        )
        for row in rows
    }
    errors: dict[int, dict[str, list[str]]] = {}
    for position, item in enumerate(new_order.items):
        price = prices.get(item.sku)
        if price is None:
            problem = "No product has this SKU."
        elif not price.active:
            problem = "This product is no longer sold."
        elif price.currency != new_order.currency:
            problem = f"This product is priced in {price.currency}, not {new_order.currency}."
        else:
            continue
        errors[position] = {"sku": [problem]}
    if errors:
        raise UnprocessableError(
            "Some items cannot be ordered; see `errors`.", errors={"items": errors}
        )
    return prices


def _priced_order(
    actor: Actor, new_order: NewOrder, prices: dict[str, CataloguePrice]
) -> PlacedOrder:
    now = utcnow()
    lines = tuple(
        # Copied, not referenced: a later price change leaves placed orders as they were.
        PlacedLine(
            sku=item.sku,
            quantity=item.quantity,
            unit_price_cents=prices[item.sku].unit_price_cents,
        )
        for item in new_order.items
    )
    return PlacedOrder(
        id=uuid.uuid4(),
        user_id=actor.user_id,
        status=OrderStatus.PENDING.value,
        currency=new_order.currency,
        # Bounded by the schemas (100 items x 1000 x 10^9) far below BIGINT and 2^53.
        total_cents=sum(line.quantity * line.unit_price_cents for line in lines),
        version=1,
        created_at=now,
        updated_at=now,
        items=lines,
    )


def _order_created(order: PlacedOrder) -> Event:
    return contracts.build(
        contracts.OrderCreatedV1(
            order_id=str(order.id),
            user_id=order.user_id,
            status=order.status,
            total_cents=order.total_cents,
            currency=order.currency,
            items=[
                contracts.OrderItemV1(
                    sku=i.sku, quantity=i.quantity, unit_price_cents=i.unit_price_cents
                )
                for i in order.items
            ],
            version=order.version,
        )
    )


# -- changing orders -----------------------------------------------------------------------


def _visible(actor: Actor) -> sa.ColumnElement[bool]:
    """Ownership as a WHERE clause: someone else's order is simply not found (BOLA)."""
    return sa.true() if actor.is_admin else ORDERS.c.user_id == actor.user_id


def get_order(*, session: Session, actor: Actor, order_id: uuid.UUID) -> Order:
    """One order with its items as an ORM object to change, if the actor may see it (404)."""
    # joinedload: the order and its items in one round trip.
    order = (
        session.execute(
            sa.select(Order)
            .options(joinedload(Order.items))
            .where(Order.id == order_id, _visible(actor))
        )
        .unique()
        .scalar_one_or_none()
    )
    if order is None:
        raise NotFoundError("No such order.")
    return order


def cancel_order(
    *,
    session: Session,
    actor: Actor,
    order_id: uuid.UUID,
    if_match: Collection[int] | None = None,
) -> Order:
    """Cancel a pending or confirmed order of the actor (any order for admins)."""
    order = get_order(session=session, actor=actor, order_id=order_id)
    _transition(session, order, OrderStatus.CANCELLED, if_match=if_match)
    return order


def change_order_status(
    *,
    session: Session,
    actor: Actor,
    order_id: uuid.UUID,
    status: str,
    if_match: Collection[int] | None = None,
) -> Order:
    """Move an order along the state machine (admins only)."""
    # Ownership first: a user probing someone else's order learns nothing (404), while
    # on their own order they are told what they lack (403).
    order = get_order(session=session, actor=actor, order_id=order_id)
    if not actor.is_admin:
        raise ForbiddenError("Only admins may change an order's status.")
    _transition(session, order, OrderStatus(status), if_match=if_match)
    return order


def _transition(
    session: Session,
    order: Order,
    target: OrderStatus,
    *,
    if_match: Collection[int] | None,
) -> None:
    """Apply `order.status -> target` with a version check, and record order.status_changed.

    `if_match` holds the versions the client's If-Match accepts (None: no precondition).
    The UPDATE only matches the version read, so of two concurrent changes made from the
    same version exactly one wins; the loser gets 412 (it sent If-Match) or re-checks the
    new state (it did not).
    """
    for attempt in range(TRANSITION_ATTEMPTS):
        if if_match is not None and order.version not in if_match:
            raise PreconditionFailedError(
                "The order has changed since you read it (If-Match does not match its ETag)."
            )
        if not can_transition(order.status, target):
            raise ConflictError(f"A {order.status} order cannot become {target.value}.")
        source, read_version = order.status, order.version
        result = session.execute(
            sa.update(Order)
            .where(Order.id == order.id, Order.version == read_version)
            .values(status=target.value, version=read_version + 1, updated_at=utcnow())
            .execution_options(synchronize_session="evaluate")
        )
        if rows_matched(result) == 1:
            record_event(
                session,
                contracts.build(
                    contracts.OrderStatusChangedV1(
                        order_id=str(order.id),
                        user_id=order.user_id,
                        from_=source,
                        to=target.value,
                        version=read_version + 1,
                    )
                ),
                model=Outbox,
            )
            return
        if if_match is not None:
            raise PreconditionFailedError(
                "The order was changed concurrently (If-Match no longer matches its ETag)."
            )
        log.info("order changed concurrently; re-checking", extra={"attempt": attempt + 1})
        session.refresh(order, attribute_names=["status", "version", "updated_at"])
    raise ConflictError("The order keeps changing concurrently; read it again and retry.")
