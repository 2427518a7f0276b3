"""What the benchmarks order is an order the service accepts, priced from the seeded catalogue."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.events import ORDER_BODY, ORDER_EVENT_ITEMS
from services.orders.cli import DEMO_PRODUCTS
from services.orders.schemas import OrderCreateSchema

LUA = Path(__file__).resolve().parents[1] / "lua" / "api.lua"


def test_wrk_posts_the_same_order_as_the_python_clients():
    body = re.search(r"local ORDER_BODY = '([^']*)'", LUA.read_text())
    assert body is not None
    assert json.loads(body.group(1)) == ORDER_BODY


def test_the_order_names_seeded_products_in_their_currency_and_sends_no_price():
    new_order = OrderCreateSchema().load(ORDER_BODY)  # refuses a client-sent price
    catalogue = {p.sku: p for p in DEMO_PRODUCTS}
    for item in new_order.items:
        product = catalogue[item.sku]
        assert (product.currency, product.active) == (new_order.currency, True)


def test_the_simulated_order_created_event_carries_the_catalogue_prices():
    catalogue = {p.sku: p.unit_price_cents for p in DEMO_PRODUCTS}
    lines = [{**i, "unit_price_cents": catalogue[i["sku"]]} for i in ORDER_BODY["items"]]
    assert ORDER_EVENT_ITEMS == lines
