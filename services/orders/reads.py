"""Reading orders: the hot read paths (GET one order, GET a page), one query each.

Separate from the use cases that change orders because they work another way: on the reads
engine, outside any transaction, with Core statements built once, and with nothing to commit.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from services.orders.services import ITEMS, ORDERS, Actor
from shared.errors import NotFoundError
from shared.pagination import PageKey, older_than, split_page

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class OrderView:
    """An order as read for display: its row, and one row per item (in order) if it has any.

    Plain rows of a Core query, not ORM objects: the reads render them as they are.
    """

    order: sa.Row[Any]
    items: Sequence[sa.Row[Any]]


@dataclass(frozen=True)
class OrderPage:
    """One page of orders and the key of the next one (None on the last page)."""

    orders: list[OrderView]
    next_key: PageKey | None


# The reads (GET one order, GET a page) are the hot paths. They run on the reads engine (see
# `read_engine_options`): autocommit, so no BEGIN and ROLLBACK around the one query, and no
# ping before each use, so a connection the database dropped is found by the query itself
# and the read is run once more (`_read`). Their statements are Core selects built once with
# bound parameters: SQLAlchemy then reuses the statement's cache key and compiled form, where
# building the select per request (or loading ORM objects) costs more CPU than all the rest
# of the request's database work.

_ITEM_COLUMNS = (ITEMS.c.sku, ITEMS.c.quantity, ITEMS.c.unit_price_cents)
_BY_ORDER = operator.attrgetter("id")


def _read(engine: sa.Engine, query: Callable[[sa.Connection], T]) -> T:
    """Run a read-only `query` on a connection of `engine`; once more if that one was dead.

    Stands in for a ping before each use (one more round trip per request): a read in
    autocommit changed nothing, so running it again after the database restarted is safe.
    The failed attempt invalidated the pool's older connections, so the retry connects anew.
    """
    try:
        with engine.connect() as connection:
            return query(connection)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("database connection was closed; reading again on a new one")
    with engine.connect() as connection:
        return query(connection)


@functools.cache
def _one_order_query(everyone: bool) -> sa.Select[Any]:
    """The order `:order_id` (of `:user_id` unless `everyone`) joined with its items."""
    query = (
        sa.select(*ORDERS.c, *_ITEM_COLUMNS)
        .select_from(ORDERS.outerjoin(ITEMS, ITEMS.c.order_id == ORDERS.c.id))
        .where(ORDERS.c.id == sa.bindparam("order_id"))
        .order_by(ITEMS.c.position)
    )
    return query if everyone else query.where(ORDERS.c.user_id == sa.bindparam("user_id"))


def read_order(*, engine: sa.Engine, actor: Actor, order_id: uuid.UUID) -> OrderView:
    """One order with its items, if the actor may see it (404 otherwise), in one query."""
    query = _one_order_query(actor.is_admin)
    parameters = {"order_id": order_id, "user_id": actor.user_id}
    rows = _read(engine, lambda connection: connection.execute(query, parameters).all())
    if not rows:
        raise NotFoundError("No such order.")
    return _view(rows)


def _view(rows: Sequence[sa.Row[Any]]) -> OrderView:
    """The view of one order from its rows: order columns plus one item each (outer join)."""
    return OrderView(order=rows[0], items=rows if rows[0].sku is not None else [])


@functools.cache
def _page_query(everyone: bool, by_status: bool, after_key: bool) -> sa.Select[Any]:
    """Up to `:limit` orders newest first, with their items, in one query.

    The keyset walk of `shared.pagination`, with the key as bound parameters so that the
    statement is built once, in the order of the `(..., created_at, id)` indexes.
    """
    page = sa.select(*ORDERS.c)
    if not everyone:
        page = page.where(ORDERS.c.user_id == sa.bindparam("user_id"))
    if by_status:
        page = page.where(ORDERS.c.status == sa.bindparam("status"))
    if after_key:
        page = page.where(
            older_than(
                ORDERS.c.created_at,
                ORDERS.c.id,
                sa.bindparam("after_created_at", type_=ORDERS.c.created_at.type),
                sa.bindparam("after_id", type_=ORDERS.c.id.type),
            )
        )
    newest_first = page.order_by(ORDERS.c.created_at.desc(), ORDERS.c.id.desc())
    orders = newest_first.limit(sa.bindparam("limit")).subquery("page")
    return (
        sa.select(orders, *_ITEM_COLUMNS)
        .select_from(orders.outerjoin(ITEMS, ITEMS.c.order_id == orders.c.id))
        .order_by(orders.c.created_at.desc(), orders.c.id.desc(), ITEMS.c.position)
    )


def read_orders_page(
    *,
    engine: sa.Engine,
    actor: Actor,
    limit: int,
    status: str | None = None,
    after: PageKey | None = None,
) -> OrderPage:
    """A page of orders newest first (own ones; all for admins) with their items, one query."""
    query = _page_query(actor.is_admin, status is not None, after is not None)
    parameters = {
        "user_id": actor.user_id,
        "status": status,
        "after_created_at": after.created_at if after else None,
        "after_id": after.id if after else None,
        "limit": limit + 1,  # one more tells whether there is a next page
    }
    rows = _read(engine, lambda connection: connection.execute(query, parameters).all())
    views = [_view(list(group)) for _, group in itertools.groupby(rows, _BY_ORDER)]
    orders, next_key = split_page(views, limit, key=lambda view: PageKey.of(view.order))
    return OrderPage(orders=orders, next_key=next_key)
