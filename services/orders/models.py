"""The orders service's tables: the product catalogue, orders and their items, the customer
projection, idempotency keys, and the event outbox/inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import NAMING_CONVENTION, JSONType, utcnow
from shared.inbox import InboxMixin
from shared.outbox import OutboxMixin


class OrdersBase(DeclarativeBase):
    """This service's declarative base: its own metadata, with the suite's naming convention.

    Not `shared.db.Base` itself: every service's models would then share one MetaData, and
    two services' `outbox` tables could not be imported in one process (the test run).
    """

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


# Objects stay readable after commit: the API renders what it just wrote without reloading
# it (and `items` are `lazy="raise"`, so a reload could not fetch them behind our back).
db = SQLAlchemy(model_class=OrdersBase, session_options={"expire_on_commit": False})
# The bind key of a second engine on the same database for the read-only GETs (see
# reads.read_order); everything that writes uses the default engine and `db.session`.
READS = "reads"

if TYPE_CHECKING:
    # flask-sqlalchemy types db.Model as a variable, which mypy refuses as a base class.
    Model = OrdersBase
else:
    Model = db.Model


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


# pending -> confirmed -> shipped -> delivered; pending|confirmed -> cancelled.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}
CANCELLABLE = frozenset(s for s, targets in TRANSITIONS.items() if OrderStatus.CANCELLED in targets)


def can_transition(current: str, target: str) -> bool:
    """True when the state machine allows `current -> target`."""
    return OrderStatus(target) in TRANSITIONS[OrderStatus(current)]


_STATUS_LIST = ", ".join(f"'{s.value}'" for s in OrderStatus)


class Product(Model):
    """A product of the catalogue: what an order line's unit price is copied from.

    `id` orders the keyset pages (with `created_at`); clients name products by `sku`.
    An inactive product stays listed for admins' reference but cannot be ordered.
    """

    __tablename__ = "products"
    __table_args__ = (
        sa.CheckConstraint("unit_price_cents >= 0", name="unit_price_not_negative"),
        # The public list (active ones) and the admins' list of withdrawn ones, newest first.
        sa.Index("ix_products_active_created_at_id", "active", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    sku: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    unit_price_cents: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    def __repr__(self) -> str:
        return f"<Product {self.sku} {self.unit_price_cents} {self.currency}>"


class Order(Model):
    """An order of one user, in one currency; `version` grows with every change (ETag)."""

    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({_STATUS_LIST})", name="status_known"),
        sa.CheckConstraint("total_cents >= 0", name="total_not_negative"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        # One index per list query, each ending in (created_at, id) so that keyset pages
        # newest first are a backward index scan: a user's orders, a user's orders in a
        # status, everyone's (admins), everyone's in a status (admins).
        sa.Index("ix_orders_user_id_created_at_id", "user_id", "created_at", "id"),
        sa.Index("ix_orders_user_id_status_created_at_id", "user_id", "status", "created_at", "id"),
        sa.Index("ix_orders_created_at_id", "created_at", "id"),
        sa.Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default=OrderStatus.PENDING.value)
    currency: Mapped[str] = mapped_column(sa.String(3))
    total_cents: Mapped[int] = mapped_column(sa.BigInteger)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    # lazy="raise": every query states how it loads items, so no page can turn into N+1.
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order",
        order_by="OrderItem.position",
        cascade="all, delete-orphan",
        lazy="raise",
    )

    def __repr__(self) -> str:
        return f"<Order {self.id} {self.status} v{self.version}>"


class OrderItem(Model):
    """One line of an order: `quantity` units of `sku` at `unit_price_cents` each."""

    __tablename__ = "order_items"
    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("unit_price_cents >= 0", name="unit_price_not_negative"),
    )

    # The primary key's leading order_id serves `selectinload` (order_id IN (...)).
    order_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    sku: Mapped[str] = mapped_column(sa.String(64))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    unit_price_cents: Mapped[int] = mapped_column(sa.BigInteger)

    order: Mapped[Order] = relationship(back_populates="items")


class Customer(Model):
    """What orders knows of a user, from auth's events; `active` false refuses new orders."""

    __tablename__ = "customers"

    user_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # Unknown until user.registered arrives (an order or user.deactivated may come first).
    email: Mapped[str | None] = mapped_column(sa.String(320))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # The user's version (auth's counter) that last set `active`, and the one that last set
    # email and name: an older event arriving late changes neither (0: none applied yet).
    active_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    profile_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


class IdempotencyKey(Model):
    """The first answer to a create sent with an Idempotency-Key, replayed on retries.

    The primary key (user_id, key) is the unique constraint that makes concurrent retries
    safe: on PostgreSQL the second insert waits for the first transaction, then fails.
    """

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    # SHA-256 (hex) of the canonical request body: same key + other body is refused.
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response_status: Mapped[int] = mapped_column(sa.SmallInteger)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    response_headers: Mapped[dict[str, str]] = mapped_column(JSONType)
    # Indexed for the purge of expired keys.
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, index=True
    )


class Outbox(OutboxMixin, Model):
    """Events waiting for the relay; written in the same transaction as the change."""


class Inbox(InboxMixin, Model):
    """Events this service has applied, so a redelivery changes nothing."""
