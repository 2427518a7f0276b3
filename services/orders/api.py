# (flask-smorest's decorators carry no type hints; the views below are fully annotated.)
"""HTTP endpoints of the orders service: parse, call a use case, render. No rules here.

ETags are strong, `"<order id>-<version>"`: strong because If-Match compares strongly
(RFC 9110 13.1.1; a weak tag never matches), and the id makes a tag copied from another
order fail instead of matching by accident.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Response, current_app, jsonify, make_response, request, url_for
from flask.views import MethodView
from sqlalchemy.orm import Session
from werkzeug.exceptions import UnsupportedMediaType

from services.orders import catalogue, reads, services
from services.orders.models import READS, Order, Product, db
from services.orders.schemas import (
    IdempotencyHeadersSchema,
    IfMatchHeadersSchema,
    OrderCancelSchema,
    OrderCreateSchema,
    OrderPageSchema,
    OrderQueryArgsSchema,
    OrderSchema,
    OrderStatusChangeSchema,
    ProductCreateSchema,
    ProductPageSchema,
    ProductPatchSchema,
    ProductQueryArgsSchema,
    ProductSchema,
    render_order,
    render_order_fields,
    render_order_page,
)
from shared.app import ApiBlueprint
from shared.conditional import conditional_get
from shared.openapi import operation
from shared.tokens import current_principal, require_auth
from shared.uow import unit_of_work

blp = ApiBlueprint(
    "orders",
    __name__,
    url_prefix="/api/v1/orders",
    description="Place orders, list and read them, cancel them; admins move them along.",
)  # Every GET here answers per-user data: ETags, 304s and private caching (shared.conditional).
blp.after_request(conditional_get)
products_blp = ApiBlueprint(
    "products",
    __name__,
    url_prefix="/api/v1/products",
    description="The catalogue orders are priced from: listed to anyone, changed by admins.",
)
T = TypeVar("T")

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
_VERSION = re.compile(r"[0-9]{1,9}")
# One element of an If-Match list (RFC 9110 8.8.3, 5.6.1): an entity-tag, optionally weak,
# or nothing (empty elements are allowed), up to the next comma. By hand because werkzeug's
# parse_etags is lenient: it takes unquoted tags as strong ones and yields None for `""`.
_IF_MATCH_ELEMENT = re.compile(r'[ \t]*(?:(W/)?("[\x21\x23-\x7e\x80-\xff]*"))?[ \t]*(?:,|\Z)')


def etag_for(order_id: uuid.UUID | str, version: int) -> str:
    """The ETag header value of one version of an order."""
    return f'"{order_id}-{version}"'


def if_match_versions(header: str | None, order_id: uuid.UUID) -> frozenset[int] | None:
    """Versions of this order an If-Match header accepts; None when it sets no condition.

    A version is accepted only when a strong tag in the header is exactly its ETag, quotes
    included: `"<id>-01"`, an unquoted `<id>-1` or a weak tag match nothing. A header that
    is not a list of entity-tags matches nothing either (412, never "no condition").
    """
    if header is None:
        return None
    if header.strip() == "*":
        return None  # any current version of an existing order
    versions: set[int] = set()
    position = 0
    while position < len(header):
        element = _IF_MATCH_ELEMENT.match(header, position)
        if element is None:
            return frozenset()
        weak, tag = element.groups()
        if tag is not None and weak is None:
            version = _version_in(tag, order_id)
            if version is not None:
                versions.add(version)
        position = element.end()
    return frozenset(versions)  # empty: nothing can match, so 412


def _version_in(tag: str, order_id: uuid.UUID) -> int | None:
    """The version whose ETag is exactly `tag` (quotes included), if it names this order."""
    prefix = f'"{order_id}-'
    digits = tag[len(prefix) : -1]
    if not (tag.startswith(prefix) and _VERSION.fullmatch(digits)):
        return None
    version = int(digits)
    return version if etag_for(order_id, version) == tag else None


def _session() -> Session:
    """This request's database session (the scoped session's current one)."""
    return db.session()


def _reads() -> sa.Engine:
    """The engine of the read-only GETs (autocommit, no ping; see reads.read_order)."""
    return db.engines[READS]


def _committed(use_case: Callable[[Session], T]) -> T:
    """Run a use case in this request's session and commit what it did (rolled back on error)."""
    session = _session()
    try:
        result = use_case(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return result


def _actor() -> services.Actor:
    principal = current_principal()
    return services.Actor(user_id=principal.user_id, is_admin=principal.is_admin)


def _with_etag(order: Order) -> tuple[Order, dict[str, str]]:
    return order, {"ETag": etag_for(order.id, order.version)}


def _created(order: services.PlacedOrder) -> services.StoredResponse:
    """The 201 answer to a create; stored with an Idempotency-Key and replayed as is."""
    return services.StoredResponse(
        status=201,
        body=render_order_fields(order, order.items),
        headers={
            "Location": url_for("orders.order", order_id=order.id),
            "ETag": etag_for(order.id, order.version),
        },
    )


@blp.route("", endpoint="orders")
class Orders(MethodView):
    """The caller's orders (everyone's for admins)."""

    decorators = [require_auth]

    @operation(blp, "list_orders", conditional=True)
    @blp.doc(security=BEARER)
    @blp.arguments(OrderQueryArgsSchema, location="query")
    @blp.response(200, OrderPageSchema)
    def get(self, args: Mapping[str, Any]) -> Response:
        """List orders newest first, `limit` (1-100, default 20) per page."""
        page = reads.read_orders_page(
            engine=_reads(),
            actor=_actor(),
            limit=args["limit"],
            status=args.get("status"),
            after=args.get("cursor"),
        )
        return jsonify(render_order_page(page))

    @operation(blp, "place_order", 403)
    @blp.doc(security=BEARER)
    @blp.arguments(OrderCreateSchema)
    @blp.arguments(IdempotencyHeadersSchema, location="headers")
    @blp.response(201, OrderSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, new_order: services.NewOrder, headers: Mapping[str, Any]) -> Response:
        """Place an order; retries with the same Idempotency-Key get the first answer."""
        with unit_of_work(_session()) as session:
            placement = services.place_order(
                session=session,
                actor=_actor(),
                new_order=new_order,
                render=_created,
                idempotency_key=headers.get("idempotency_key"),
                idempotency_ttl=timedelta(
                    seconds=current_app.config["ORDERS_IDEMPOTENCY_TTL_SECONDS"]
                ),
            )
        stored = placement.response
        response = make_response(stored.body, stored.status, stored.headers)
        if placement.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response


@blp.route("/<uuid:order_id>", endpoint="order")
class OrderDetail(MethodView):
    """One order."""

    decorators = [require_auth]

    @operation(blp, "get_order", conditional=True)
    @blp.doc(security=BEARER)
    @blp.response(200, OrderSchema)
    def get(self, order_id: uuid.UUID) -> Response:
        """Read an order (the caller's own; any for admins) with its ETag."""
        view = reads.read_order(engine=_reads(), actor=_actor(), order_id=order_id)
        response = jsonify(render_order(view))
        response.headers["ETag"] = etag_for(view.order.id, view.order.version)
        return response


@blp.route("/<uuid:order_id>/cancel", endpoint="cancel")
class OrderCancel(MethodView):
    """Cancelling an order."""

    decorators = [require_auth]

    @operation(blp, "cancel_order", 409, 412)
    @blp.doc(security=BEARER)
    @blp.arguments(OrderCancelSchema, required=False)
    @blp.arguments(IfMatchHeadersSchema, location="headers")
    @blp.response(200, OrderSchema)
    def post(
        self, _body: Mapping[str, Any], headers: Mapping[str, Any], order_id: uuid.UUID
    ) -> tuple[Order, dict[str, str]]:
        """Cancel a pending or confirmed order (409 otherwise); honours If-Match."""
        if not request.is_json and request.get_data(cache=True):
            # webargs reads JSON bodies only: any other body would be ignored, not refused.
            raise UnsupportedMediaType("Send no body, or an empty JSON object.")
        with unit_of_work(_session()) as session:
            order = services.cancel_order(
                session=session,
                actor=_actor(),
                order_id=order_id,
                if_match=if_match_versions(headers.get("if_match"), order_id),
            )
        return _with_etag(order)


@blp.route("/<uuid:order_id>/status", endpoint="status")
class OrderStatusChange(MethodView):
    """Moving an order through its states (admins)."""

    decorators = [require_auth]

    @operation(blp, "change_order_status", 403, 409, 412)
    @blp.doc(security=BEARER)
    @blp.arguments(OrderStatusChangeSchema)
    @blp.arguments(IfMatchHeadersSchema, location="headers")
    @blp.response(200, OrderSchema)
    def post(
        self, change: Mapping[str, Any], headers: Mapping[str, Any], order_id: uuid.UUID
    ) -> tuple[Order, dict[str, str]]:
        """Set the status (admins); 409 for an illegal transition, 412 for a stale If-Match."""
        with unit_of_work(_session()) as session:
            order = services.change_order_status(
                session=session,
                actor=_actor(),
                order_id=order_id,
                status=change["status"],
                if_match=if_match_versions(headers.get("if_match"), order_id),
            )
        return _with_etag(order)


@products_blp.route("", endpoint="products")
class Products(MethodView):
    """The catalogue."""

    @operation(products_blp, "list_products")
    @products_blp.arguments(ProductQueryArgsSchema, location="query")
    @products_blp.response(200, ProductPageSchema)
    def get(self, args: Mapping[str, Any]) -> catalogue.ProductPage:
        """List the products on sale newest first (anyone; `active=false`: the withdrawn ones)."""
        return catalogue.list_products(
            session=_session(),
            active=args["active"],
            limit=args["limit"],
            after=args.get("cursor"),
        )

    @operation(products_blp, "create_product", 403, 409)
    @products_blp.doc(security=BEARER)
    @require_auth
    @products_blp.arguments(ProductCreateSchema)
    @products_blp.response(201, ProductSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, product: catalogue.NewProduct) -> tuple[Product, dict[str, str]]:
        """Add a product (admins; 403 otherwise); 409 when the SKU is taken."""
        created = _committed(
            lambda session: catalogue.create_product(
                session=session, actor=_actor(), product=product
            )
        )
        return created, {"Location": url_for("products.product", sku=created.sku)}


@products_blp.route("/<path:sku>", endpoint="product")
class ProductDetail(MethodView):
    """One product, named by its SKU (which may hold a `/`)."""

    @operation(products_blp, "update_product", 403)
    @products_blp.doc(security=BEARER)
    @require_auth
    @products_blp.arguments(ProductPatchSchema)
    @products_blp.response(200, ProductSchema)
    def patch(self, changes: catalogue.ProductChanges, sku: str) -> Product:
        """Change a product's name, price, currency or availability (admins; 403 otherwise).

        Orders placed before keep the price they were placed at.
        """
        return _committed(
            lambda session: catalogue.update_product(
                session=session, actor=_actor(), sku=sku, changes=changes
            )
        )
