"""The catalogue builds every event the way consumers parse it, and refuses anything else."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from shared import contracts
from shared.contracts.handlers import Handlers
from shared.events import Event, InvalidEvent, parse_event

REGISTERED = contracts.UserRegisteredV1(
    user_id="u-1", email="ada@example.com", name="Ada", version=3
)


def roundtrip(event: Event) -> Event:
    """The event as a consumer receives it: published JSON, parsed back."""
    return parse_event(event.to_json())


def test_a_built_event_names_its_type_source_subject_and_version_and_parses_back_the_same():
    event = contracts.build(REGISTERED)

    assert (event.type, event.source, event.subject) == ("user.registered", "/auth", "u-1")
    assert event.dataschema == "urn:flask-microservices-suite:events:user.registered:1"
    assert contracts.parse(roundtrip(event)) == REGISTERED


def test_a_field_whose_wire_name_is_a_keyword_goes_out_under_its_wire_name():
    changed = contracts.OrderStatusChangedV1(
        order_id="o-1", user_id="u-1", from_="pending", to="confirmed", version=2
    )
    event = contracts.build(changed)

    assert event.data == {
        "order_id": "o-1",
        "user_id": "u-1",
        "from": "pending",
        "to": "confirmed",
        "version": 2,
    }
    assert contracts.parse(roundtrip(event)) == changed


def test_a_date_travels_as_rfc_3339_text_and_comes_back_as_a_date():
    expires = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    requested = contracts.UserVerificationRequestedV1(
        user_id="u-1",
        email="ada@example.com",
        name="Ada",
        verify_url="https://example.com/verify?t=abc",
        expires_at=expires,
    )
    event = roundtrip(contracts.build(requested))

    assert event.data["expires_at"] == "2026-12-03T10:00:00Z"
    assert contracts.parse(event).expires_at == expires


def with_data(event: Event, **changes: object) -> Event:
    data = {**event.data, **changes}
    return dataclasses.replace(event, data={k: v for k, v in data.items() if v is not None})


GOOD = contracts.build(REGISTERED)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (dataclasses.replace(GOOD, type="user.renamed"), "unknown event type 'user.renamed'"),
        (dataclasses.replace(GOOD, dataschema=None), "without a dataschema"),
        (
            dataclasses.replace(GOOD, dataschema=contracts.dataschema("user.registered", 9)),
            "unknown dataschema .* \\(known versions: 1\\)",
        ),
        (
            dataclasses.replace(GOOD, dataschema=contracts.dataschema("user.deactivated", 1)),
            "unknown dataschema",
        ),
        (dataclasses.replace(GOOD, source="/orders"), "must come from /auth, not '/orders'"),
        (with_data(GOOD, email=None), "email: Field required"),
        (with_data(GOOD, email=None, mail="ada@example.com"), "mail: Unexpected keyword"),
        (with_data(GOOD, version="3"), "version: Input should be a valid integer"),
        (with_data(GOOD, version=True), "version: Input should be a valid integer"),
        (with_data(GOOD, version=0), "version: Input should be greater than or equal to 1"),
        (with_data(GOOD, user_id=""), "user_id: String should have at least 1 character"),
    ],
    ids=[
        "unknown-type",
        "no-dataschema",
        "unknown-version",
        "another-type-s-schema",
        "wrong-source",
        "missing-field",
        "renamed-field",
        "number-as-text",
        "boolean-as-number",
        "out-of-range",
        "empty-id",
    ],
)
def test_anything_the_catalogue_does_not_vouch_for_is_an_invalid_event_with_the_reason(
    event: Event, reason: str
):
    with pytest.raises(InvalidEvent, match=reason):
        contracts.parse(event)


def test_an_order_from_anywhere_but_orders_is_refused():
    created = contracts.build(
        contracts.OrderCreatedV1(
            order_id="o-1",
            user_id="u-1",
            status="pending",
            total_cents=100,
            currency="EUR",
            items=[contracts.OrderItemV1(sku="A", quantity=1, unit_price_cents=100)],
            version=1,
        )
    )

    with pytest.raises(InvalidEvent, match="order.created must come from /orders, not '/auth'"):
        contracts.parse(dataclasses.replace(created, source="/auth"))


def test_every_user_event_comes_from_auth_and_every_order_event_from_orders():
    for contract in contracts.CATALOGUE.contracts:
        domain = contract.type.split(".")[0]
        assert contract.producer == {"user": "/auth", "order": "/orders"}[domain], contract.key


@dataclasses.dataclass(frozen=True, kw_only=True)
class ThingHappenedV1:
    thing_id: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ThingHappenedV2:
    thing_id: str
    size: int


def two_versions() -> contracts.Catalogue:
    """thing.happened published in two versions: `old` still reads v1, `new` moved to v2."""
    common = {"type": "thing.happened", "producer": "/things", "subject": lambda d: d.thing_id}
    return contracts.Catalogue(
        [
            contracts.Contract(
                version=1, data=ThingHappenedV1, consumers=("old",), summary="v1", **common
            ),
            contracts.Contract(
                version=2, data=ThingHappenedV2, consumers=("new",), summary="v2", **common
            ),
        ]
    )


def test_side_by_side_versions_reach_each_consumer_once_in_the_version_it_reads():
    catalogue = two_versions()
    v1 = roundtrip(catalogue.build(ThingHappenedV1(thing_id="t-1")))
    v2 = roundtrip(catalogue.build(ThingHappenedV2(thing_id="t-1", size=3)))

    assert v2.dataschema == "urn:flask-microservices-suite:events:thing.happened:2"
    assert catalogue.parse_for(v1, "old") == ThingHappenedV1(thing_id="t-1")
    assert catalogue.parse_for(v2, "old") is None
    assert catalogue.parse_for(v1, "new") is None
    assert catalogue.parse_for(v2, "new") == ThingHappenedV2(thing_id="t-1", size=3)
    with pytest.raises(InvalidEvent, match="size: Field required"):
        catalogue.parse_for(dataclasses.replace(v2, data={"thing_id": "t-1"}), "old")


def test_handlers_are_found_by_the_type_of_the_contract_they_were_registered_for():
    handlers = Handlers(contracts.NOTIFICATIONS_SERVICE)

    @handlers.on(contracts.OrderCreatedV1, contracts.OrderStatusChangedV1)
    def on_order(_session, _event, _data):
        """An order handler."""

    assert dict(handlers) == {"order.created": on_order, "order.status_changed": on_order}


def test_a_handler_for_a_contract_the_consumer_is_not_declared_for_is_refused_at_import():
    handlers = Handlers(contracts.GATEWAY)

    with pytest.raises(ValueError, match="not declared as a consumer of order.created.v1"):
        handlers.on(contracts.OrderCreatedV1)
    with pytest.raises(TypeError, match="not an event in the catalogue"):
        handlers.on(contracts.OrderItemV1)
    assert len(handlers) == 0


def test_a_second_handler_for_the_same_type_is_refused():
    handlers = Handlers(contracts.ORDERS_SERVICE)
    handlers.on(contracts.UserDeactivatedV1)(lambda _s, _e, _d: None)

    with pytest.raises(ValueError, match="two handlers for user.deactivated"):
        handlers.on(contracts.UserDeactivatedV1)


def test_a_batch_form_is_registered_only_beside_a_per_event_handler_and_only_once():
    handlers = Handlers(contracts.NOTIFICATIONS_SERVICE)

    def on_orders(_session, _items):
        """A batch form."""

    # Without a per-event form, a failed batch could not be replayed event by event.
    with pytest.raises(ValueError, match="per-event handler of order.created"):
        handlers.on_batch(contracts.OrderCreatedV1)(on_orders)
    handlers.on(contracts.OrderCreatedV1)(lambda _s, _e, _d: None)
    handlers.on_batch(contracts.OrderCreatedV1)(on_orders)

    assert dict(handlers.batches) == {"order.created": on_orders}
    with pytest.raises(ValueError, match="two batch handlers for order.created"):
        handlers.on_batch(contracts.OrderCreatedV1)


def test_a_use_case_taking_the_data_fields_handles_the_event_with_them():
    handlers = Handlers(contracts.ORDERS_SERVICE)
    calls = []

    def deactivate(*, session, user_id, version):
        calls.append((session, user_id, version))

    handlers.use_case(contracts.UserDeactivatedV1, deactivate)
    event = contracts.build(contracts.UserDeactivatedV1(user_id="u-1", version=4))
    handlers["user.deactivated"]("the session", event, contracts.parse(event))

    assert calls == [("the session", "u-1", 4)]


def test_a_use_case_that_does_not_take_exactly_the_data_fields_is_refused_at_import():
    handlers = Handlers(contracts.ORDERS_SERVICE)

    def without_version(*, session, user_id):
        """Would drop the version the projection orders changes by."""

    def wants_more(*, session, user_id, version, reason):
        """Would never get `reason`."""

    for use_case in (without_version, wants_more):
        with pytest.raises(ValueError, match="does not take exactly the fields"):
            handlers.use_case(contracts.UserDeactivatedV1, use_case)
    assert len(handlers) == 0
