"""Unit tests of the pure rules: state machine, ETags, cursors, request fingerprints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError

from services.orders.api import etag_for, if_match_versions
from services.orders.currencies import ACTIVE_CURRENCIES
from services.orders.models import OrderStatus, can_transition
from services.orders.reads import OrderPage, OrderView
from services.orders.schemas import (
    CursorField,
    OrderCreateSchema,
    OrderPageSchema,
    OrderSchema,
    render_order,
    render_order_fields,
    render_order_page,
)
from services.orders.services import PlacedLine, PlacedOrder, request_fingerprint
from shared.pagination import PageKey

ALLOWED = {
    ("pending", "confirmed"),
    ("pending", "cancelled"),
    ("confirmed", "shipped"),
    ("confirmed", "cancelled"),
    ("shipped", "delivered"),
}
ORDER_ID = uuid.UUID("0b8e3a52-5c1f-4a43-9a55-3d4b2c9e7f10")


@pytest.mark.parametrize("current", [s.value for s in OrderStatus])
@pytest.mark.parametrize("target", [s.value for s in OrderStatus])
def test_only_the_documented_transitions_are_allowed(current: str, target: str) -> None:
    assert can_transition(current, target) == ((current, target) in ALLOWED)


def test_an_etag_matches_only_its_own_order_and_version() -> None:
    tag = etag_for(ORDER_ID, 3)
    assert if_match_versions(tag, ORDER_ID) == {3}
    assert if_match_versions(tag, uuid.uuid4()) == frozenset()
    assert if_match_versions(f"W/{tag}", ORDER_ID) == frozenset()  # weak never matches
    assert if_match_versions(f'"other", {tag}', ORDER_ID) == {3}
    assert if_match_versions('"garbage"', ORDER_ID) == frozenset()


@pytest.mark.parametrize(
    "header",
    [
        f'"{ORDER_ID}-1", "{ORDER_ID}-4"',
        f' "x" ,"{ORDER_ID}-1",, W/"{ORDER_ID}-2" , ',  # empty list elements are allowed
        f'"", "{ORDER_ID}-1"',
    ],
)
def test_a_list_of_tags_accepts_the_versions_named_exactly(header: str) -> None:
    versions = if_match_versions(header, ORDER_ID)
    assert versions is not None and 1 in versions and 2 not in versions


@pytest.mark.parametrize(
    "header",
    [
        '""',
        '"x", ""',
        'W/"", ""',
        f'"{ORDER_ID}-01"',  # not the canonical tag of version 1
        f'"{ORDER_ID}-+1"',
        f'"{ORDER_ID}- 1"',
        f'"{str(ORDER_ID).upper()}-1"',
        f"{ORDER_ID}-1",  # unquoted
        f'"{ORDER_ID}-1"x',
        f'"{ORDER_ID}-1" "{ORDER_ID}-1"',
        f'*, "{ORDER_ID}-1"',
        '"*"',
        'W/"*"',
        f'w/"{ORDER_ID}-1"',
        f'"{ORDER_ID}-1',
        '"',
        "W/",
        "x" * 10000,
        f'"{ORDER_ID}-\u0661"',
        f'"{ORDER_ID}-\u00b2"',
    ],
)
def test_an_if_match_that_names_no_version_exactly_accepts_none(header: str) -> None:
    assert if_match_versions(header, ORDER_ID) == frozenset()


def test_if_match_star_or_absent_sets_no_condition() -> None:
    assert if_match_versions("*", ORDER_ID) is None
    assert if_match_versions(None, ORDER_ID) is None


def test_a_huge_version_in_if_match_is_just_a_mismatch() -> None:
    assert if_match_versions(f'"{ORDER_ID}-{"9" * 5000}"', ORDER_ID) == frozenset()


def test_a_cursor_round_trips_and_stays_opaque() -> None:
    key = PageKey(created_at=datetime(2025, 5, 1, 12, 30, 1, 123456, tzinfo=UTC), id=ORDER_ID)
    field = CursorField()
    cursor = field.serialize("key", {"key": key})
    assert isinstance(cursor, str) and str(ORDER_ID) not in cursor
    assert field.deserialize(cursor) == key


@pytest.mark.parametrize(
    "cursor", ["", "!!!", "bm90IGpzb24", "W10", "WyJ4IiwieSJd", "x" * 500, "WzEsMl0"]
)
def test_a_tampered_cursor_is_a_validation_error(cursor: str) -> None:
    with pytest.raises(ValidationError):
        CursorField().deserialize(cursor)


def test_the_fingerprint_ignores_key_order_and_spacing_but_not_content() -> None:
    schema = OrderCreateSchema()
    one = schema.load({"currency": "EUR", "items": [{"sku": "A", "quantity": 1}]})
    same = schema.load({"items": [{"quantity": 1, "sku": "A"}], "currency": "EUR"})
    other = schema.load({"currency": "EUR", "items": [{"sku": "A", "quantity": 2}]})
    assert request_fingerprint(one) == request_fingerprint(same)
    assert request_fingerprint(one) != request_fingerprint(other)


def test_only_real_money_counts_as_a_currency() -> None:
    assert {"EUR", "USD", "JPY", "XCG", "ZWG"} <= ACTIVE_CURRENCIES
    assert not {"XAU", "XTS", "XXX", "HRK", "usd"} & ACTIVE_CURRENCIES
    assert all(len(code) == 3 and code.isupper() for code in ACTIVE_CURRENCIES)


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2025, 5, 1, 12, 30, 1, tzinfo=UTC),  # no microseconds: isoformat drops them
        datetime(2025, 5, 1, 12, 30, 1, 5),  # naive, as SQLite hands it back
        datetime.fromisoformat("2025-05-01T14:30:01.250000+02:00"),
    ],
)
def test_the_hand_rendered_reads_are_what_the_documented_schemas_dump(created_at: datetime) -> None:
    order = SimpleNamespace(
        id=ORDER_ID,
        user_id="user-1",
        status="confirmed",
        currency="EUR",
        total_cents=2 * 1250 + 199,
        version=2,
        created_at=created_at,
        updated_at=datetime(2025, 5, 2, 9, 0, 0, 123456, tzinfo=UTC),
    )
    items = [
        SimpleNamespace(sku="BOOK-1", quantity=2, unit_price_cents=1250),
        SimpleNamespace(sku="PEN-7", quantity=1, unit_price_cents=199),
    ]
    view = OrderView(order=order, items=items)  # type: ignore[arg-type]
    orm_like = SimpleNamespace(**vars(order), items=items)
    assert render_order(view) == OrderSchema().dump(orm_like)

    empty = OrderView(order=order, items=[])  # type: ignore[arg-type]
    for next_key in (PageKey.of(order), None):
        page = OrderPage(orders=[view, empty], next_key=next_key)
        documented = SimpleNamespace(
            orders=[orm_like, SimpleNamespace(**vars(order), items=[])], next_key=next_key
        )
        assert render_order_page(page) == OrderPageSchema().dump(documented)


def test_the_hand_rendered_201_of_a_placement_is_what_the_documented_schema_dumps() -> None:
    now = datetime(2025, 5, 1, 12, 30, 1, 250000, tzinfo=UTC)
    placed = PlacedOrder(
        id=ORDER_ID,
        user_id="user-1",
        status="pending",
        currency="EUR",
        total_cents=2 * 1250 + 199,
        version=1,
        created_at=now,
        updated_at=now,
        items=(PlacedLine("BOOK-1", 2, 1250), PlacedLine("PEN-7", 1, 199)),
    )
    assert render_order_fields(placed, placed.items) == OrderSchema().dump(placed)
