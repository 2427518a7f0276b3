"""What goes in and out of the orders API: validated input, rendered output, page cursors.

Every input schema refuses unknown fields (marshmallow's RAISE), so a client can never set
`status`, `user_id`, `total_cents`, a line's `unit_price_cents` (prices come from the
catalogue) or anything else the service owns.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from services.orders.catalogue import NewProduct, ProductChanges
from services.orders.currencies import ACTIVE_CURRENCIES
from services.orders.models import OrderStatus
from services.orders.reads import OrderPage, OrderView
from services.orders.services import NewItem, NewOrder
from shared.db import as_utc
from shared.pagination import CursorField, PageQueryArgsSchema
from shared.schemas import StrictBoolean, StrictSchema, UtcDateTime

MAX_ITEMS = 100
MAX_QUANTITY = 1000
# 10^9 minor units (ten million in a 2-decimal currency) per unit: the largest possible
# total, 100 x 1000 x 10^9 = 10^14, fits a BIGINT and stays exact in a JavaScript number.
MAX_UNIT_PRICE_CENTS = 10**9

# Letters and digits, then also . _ - : / (what SKUs in the wild use); no spaces.
# (Anchored: marshmallow's Regexp validator only matches at the start of the value.)
SKU_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}\Z")
# A product's name: no control characters (no line breaks in a mail or a log line).
PRODUCT_NAME_PATTERN = re.compile(r"\A[^\x00-\x1f\x7f-\x9f]+\Z")
# Printable ASCII, as the header's value reaches us (HTTP strips surrounding blanks).
IDEMPOTENCY_KEY_PATTERN = re.compile(r"\A[\x20-\x7e]{1,255}\Z")
STATUSES = [s.value for s in OrderStatus]


# -- input ---------------------------------------------------------------------------------


def sku_field(**kwargs: Any) -> fields.String:
    """A SKU: what names a product in the catalogue and in an order line."""
    return fields.String(
        validate=validate.Regexp(
            SKU_PATTERN,
            error="Must be 1 to 64 characters: letters, digits and . _ - : / "
            "(starting with a letter or digit).",
        ),
        metadata={"example": "BOOK-1"},
        **kwargs,
    )


def currency_field(**kwargs: Any) -> fields.String:
    """An ISO 4217 code of a currency in use."""
    return fields.String(
        validate=validate.OneOf(
            sorted(ACTIVE_CURRENCIES),
            error="Must be an active ISO 4217 currency code in upper case, such as EUR.",
        ),
        metadata={"example": "EUR"},
        **kwargs,
    )


def unit_price_field(**kwargs: Any) -> fields.Integer:
    """A price per unit in the currency's minor units."""
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=MAX_UNIT_PRICE_CENTS),
        metadata={"example": 1250},
        **kwargs,
    )


def product_name_field(**kwargs: Any) -> fields.String:
    """A product's display name: 1 to 200 characters, no control characters."""
    return fields.String(
        validate=[
            validate.Length(min=1, max=200),
            validate.Regexp(PRODUCT_NAME_PATTERN, error="Must not contain control characters."),
        ],
        **kwargs,
    )


class OrderItemCreateSchema(StrictSchema):
    """One line of a new order: a product of the catalogue and how many; no price."""

    sku = sku_field(required=True)
    quantity = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_QUANTITY)
    )


class OrderCreateSchema(StrictSchema):
    """A new order: a currency and 1 to 100 lines, priced from the catalogue in that currency."""

    currency = currency_field(required=True)
    items = fields.List(
        fields.Nested(OrderItemCreateSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_ITEMS),
    )

    @validates_schema  # runs only once every field is valid
    def _distinct_skus(self, data: Mapping[str, Any], **_kwargs: Any) -> None:
        counts = Counter(item["sku"] for item in data["items"])
        repeated = sorted(sku for sku, n in counts.items() if n > 1)
        if repeated:
            raise ValidationError(
                "Each SKU may appear once; add up the quantities instead: " + ", ".join(repeated),
                field_name="items",
            )

    @post_load
    def _to_new_order(self, data: dict[str, Any], **_kwargs: Any) -> NewOrder:
        return NewOrder(
            currency=data["currency"],
            items=tuple(NewItem(**item) for item in data["items"]),
        )


class OrderCancelSchema(StrictSchema):
    """A cancellation carries no fields: no body or `{}`; anything else is refused."""


class OrderStatusChangeSchema(StrictSchema):
    """The state an admin moves an order to."""

    status = fields.String(required=True, validate=validate.OneOf(STATUSES))


class ProductCreateSchema(StrictSchema):
    """A new product of the catalogue."""

    sku = sku_field(required=True)
    name = product_name_field(required=True)
    unit_price_cents = unit_price_field(required=True)
    currency = currency_field(required=True)
    active = StrictBoolean(load_default=True)

    @post_load
    def _to_new_product(self, data: dict[str, Any], **_kwargs: Any) -> NewProduct:
        return NewProduct(**data)


class ProductPatchSchema(StrictSchema):
    """The fields of a product an admin changes; at least one. The SKU never changes."""

    MIN_PROPERTIES = 1  # documented as minProperties (shared.openapi); `_not_empty` enforces it

    name = product_name_field()
    unit_price_cents = unit_price_field()
    currency = currency_field()
    active = StrictBoolean()

    @validates_schema
    def _not_empty(self, data: Mapping[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ValidationError("Name at least one field to change.", field_name="_schema")

    @post_load
    def _to_changes(self, data: dict[str, Any], **_kwargs: Any) -> ProductChanges:
        return ProductChanges(**data)


class ProductQueryArgsSchema(PageQueryArgsSchema):
    """Filter and paging of the catalogue."""

    active = fields.Boolean(
        load_default=True,
        truthy={"true"},
        falsy={"false"},
        metadata={"description": "`false` lists the withdrawn products instead."},
    )


class OrderQueryArgsSchema(PageQueryArgsSchema):
    """Filters and paging of the order list."""

    status = fields.String(validate=validate.OneOf(STATUSES))


class IdempotencyHeadersSchema(Schema):
    """Headers of a create (other headers are ignored, not refused)."""

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(
            IDEMPOTENCY_KEY_PATTERN, error="Must be 1 to 255 printable ASCII characters."
        ),
        metadata={"description": "Retries with the same key and body get the first answer."},
    )


class IfMatchHeadersSchema(Schema):
    """Headers of a change (other headers are ignored, not refused)."""

    if_match = fields.String(
        data_key="If-Match",
        metadata={"description": "The ETag the change is based on; 412 when it is stale."},
    )


# -- output --------------------------------------------------------------------------------


class ProductSchema(Schema):
    """A product as clients see it."""

    sku = fields.String()
    name = fields.String()
    unit_price_cents = fields.Integer()
    currency = fields.String()
    active = fields.Boolean()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class ProductPageSchema(Schema):
    """A page of products, newest first, and the cursor of the next one (null at the end)."""

    items = fields.List(fields.Nested(ProductSchema))
    next_cursor = CursorField(allow_none=True)


class OrderItemSchema(Schema):
    """One line of an order."""

    sku = fields.String()
    quantity = fields.Integer()
    unit_price_cents = fields.Integer()


class OrderSchema(Schema):
    """An order as clients see it."""

    id = fields.UUID()
    user_id = fields.String()
    status = fields.String(metadata={"enum": STATUSES})
    currency = fields.String()
    total_cents = fields.Integer()
    version = fields.Integer(metadata={"description": "Grows with every change (see ETag)."})
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    items = fields.List(fields.Nested(OrderItemSchema))


class OrderPageSchema(Schema):
    """A page of orders, newest first."""

    items = fields.List(fields.Nested(OrderSchema), attribute="orders")
    next_cursor = CursorField(attribute="next_key", allow_none=True)


# -- output of the reads, rendered by hand ----------------------------------------------------
# GET one order, GET a page and the 201 of a placement render rows (or the order just
# written) straight to JSON: marshmallow's dump is a good part of a request's CPU, and they
# already hold exactly what OrderSchema shows. The schemas above still document the
# responses; tests keep the two in step.

_NEXT_CURSOR = CursorField(allow_none=True)


def render_order(view: OrderView) -> dict[str, Any]:
    """What `OrderSchema().dump` gives for this order."""
    return render_order_fields(view.order, view.items)


def render_order_fields(order: Any, items: Iterable[Any]) -> dict[str, Any]:
    """What `OrderSchema().dump` gives for an order's fields and its lines' (rows or objects)."""
    return {
        "id": str(order.id),
        "user_id": order.user_id,
        "status": order.status,
        "currency": order.currency,
        "total_cents": order.total_cents,
        "version": order.version,
        "created_at": _utc_iso(order.created_at),
        "updated_at": _utc_iso(order.updated_at),
        "items": [
            {"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents}
            for i in items
        ],
    }


def render_order_page(page: OrderPage) -> dict[str, Any]:
    """What `OrderPageSchema().dump` gives for this page."""
    return {
        "items": [render_order(view) for view in page.orders],
        "next_cursor": _NEXT_CURSOR.serialize("next_key", page),
    }


def _utc_iso(value: datetime) -> str:
    """As UtcDateTime renders it (SQLite hands back naive UTC datetimes)."""
    return as_utc(value).astimezone(UTC).isoformat()
