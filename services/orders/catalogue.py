"""The product catalogue: list, add, change and seed the products that orders are priced from.

A job of its own: only admins change it, through the API or the seeding command, and placing
an order only reads the prices it holds (`services._prices_for_customer`). The entry point
(the API view or the CLI command) owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.orders.models import Product
from services.orders.services import Actor
from shared.db import upsert, utcnow
from shared.errors import ConflictError, ForbiddenError, NotFoundError
from shared.pagination import PageKey, keyset_page


@dataclass(frozen=True)
class NewProduct:
    """A product to add to the catalogue (already validated by the schema)."""

    sku: str
    name: str
    unit_price_cents: int
    currency: str
    active: bool = True


@dataclass(frozen=True)
class ProductChanges:
    """What a PATCH changes in a product; None leaves that field as it is."""

    name: str | None = None
    unit_price_cents: int | None = None
    currency: str | None = None
    active: bool | None = None


@dataclass(frozen=True)
class ProductPage:
    """One page of products, newest first, and the key of the next one (None at the end)."""

    items: list[Product]
    next_cursor: PageKey | None


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise ForbiddenError("Only admins may change the catalogue.")


def list_products(
    *, session: Session, active: bool = True, limit: int = 20, after: PageKey | None = None
) -> ProductPage:
    """Products newest first, the ones on sale (or, with `active` false, the withdrawn ones)."""
    products, next_key = keyset_page(
        session,
        sa.select(Product).where(Product.active == active),
        created_at=Product.created_at,
        id=Product.id,
        limit=limit,
        after=after,
    )
    return ProductPage(items=products, next_cursor=next_key)


def _add_product_unless_taken(session: Session, product: NewProduct) -> Product | None:
    """Insert the product and return it, or None when its SKU is in the catalogue already.

    ON CONFLICT DO NOTHING: of two requests adding one SKU at once, one adds it and the
    other gets None (after waiting for the first to end), never an IntegrityError.
    """
    now = utcnow()
    added: Product | None = session.scalars(
        upsert(session, Product)
        .values(
            id=uuid.uuid4(),
            sku=product.sku,
            name=product.name,
            unit_price_cents=product.unit_price_cents,
            currency=product.currency,
            active=product.active,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Product.sku])
        .returning(Product)
    ).one_or_none()
    return added


def create_product(*, session: Session, actor: Actor, product: NewProduct) -> Product:
    """Add a product to the catalogue (admins only); 409 when its SKU is taken."""
    _require_admin(actor)
    created = _add_product_unless_taken(session, product)
    if created is None:
        raise ConflictError(
            "A product with this SKU exists; change it with PATCH instead.",
            errors={"sku": ["Already in the catalogue."]},
        )
    return created


def update_product(*, session: Session, actor: Actor, sku: str, changes: ProductChanges) -> Product:
    """Change a product's name, price, currency or availability (admins only); 404 if unknown.

    Placed orders keep the unit price they were placed at.
    """
    _require_admin(actor)
    product = session.scalar(sa.select(Product).where(Product.sku == sku).with_for_update())
    if product is None:
        raise NotFoundError("No product has this SKU.")
    for name in ("name", "unit_price_cents", "currency", "active"):
        value = getattr(changes, name)
        if value is not None:
            setattr(product, name, value)
    product.updated_at = utcnow()
    session.flush()
    return product


def seed_products(*, session: Session, products: Sequence[NewProduct]) -> int:
    """Add the products whose SKU is not in the catalogue yet; return how many were added.

    Never changes an existing product: an admin may have changed its price since.
    """
    return sum(_add_product_unless_taken(session, product) is not None for product in products)
