"""The CloudEvents envelope: what we publish, and what we refuse to accept from the broker."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.context import correlation
from shared.events import (
    CONTENT_TYPE,
    MAX_EVENT_BYTES,
    Event,
    InvalidEvent,
    new_event,
    parse_event,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def valid_body(**overrides):
    body = {
        "specversion": "1.0",
        "id": "0b9f3c1e-8a61-4f7e-9d0c-1f2e3d4c5b6a",
        "source": "/orders",
        "type": "order.created",
        "time": "2026-01-02T03:04:05.123456Z",
        "datacontenttype": "application/json",
        "data": {"order_id": 7},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_new_event_carries_the_request_and_trace_ids_of_the_current_context():
    with correlation("req-123", TRACEPARENT):
        event = new_event("order.created", "/orders", {"order_id": 1}, subject="orders/1")
    assert event.requestid == "req-123"
    assert event.traceparent == TRACEPARENT
    assert event.subject == "orders/1"
    assert event.time.tzinfo is not None


def test_new_event_outside_any_request_has_no_correlation_ids():
    event = new_event("user.registered", "/auth", {})
    assert event.requestid is None
    assert event.traceparent is None


def test_each_new_event_gets_its_own_id():
    first, second = (new_event("user.registered", "/auth", {}) for _ in range(2))
    assert first.id != second.id


@pytest.mark.parametrize(
    "bad_type", ["Order.Created", "order", "order.", ".created", "order created"]
)
def test_new_event_refuses_a_malformed_type(bad_type):
    with pytest.raises(ValueError, match="bad event type"):
        new_event(bad_type, "/orders", {})


def test_structured_json_round_trips_through_parse_event():
    with correlation("req-9", TRACEPARENT):
        event = new_event("order.status_changed", "/orders", {"from": "pending", "to": "paid"})
    assert parse_event(event.to_json()) == event


def test_published_json_is_structured_mode_with_a_utc_z_timestamp():
    event = Event(
        type="order.created",
        source="/orders",
        data={"order_id": 3},
        time=datetime(2026, 5, 6, 9, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    body = json.loads(event.to_json())
    assert body["specversion"] == "1.0"
    assert body["datacontenttype"] == "application/json"
    assert body["time"] == "2026-05-06T07:00:00Z"
    assert "subject" not in body and "requestid" not in body and "traceparent" not in body
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_parse_event_accepts_text_as_well_as_bytes():
    event = parse_event(json.dumps(valid_body()))
    assert event.type == "order.created"
    assert event.time == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert event.data == {"order_id": 7}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps(valid_body(specversion="0.3")), "specversion"),
        (json.dumps(valid_body(id=None)), "'id'"),
        (json.dumps(valid_body(id="")), "'id'"),
        (json.dumps(valid_body(source=5)), "'source'"),
        (json.dumps(valid_body(type="Order")), "bad type"),
        (json.dumps(valid_body(time="yesterday")), "RFC 3339"),
        (json.dumps(valid_body(time="2026-01-02T03:04:05")), "offset"),
        (json.dumps(valid_body(data=[1])), "data"),
        (json.dumps(valid_body(data=None)), "data"),
        (json.dumps(valid_body(subject="")), "'subject'"),
        (json.dumps(valid_body(requestid="x" * 2000)), "'requestid'"),
        # What consumers store must fit their columns (inbox event_id: String(36)).
        (json.dumps(valid_body(id="0b9f3c1e-8a61-4f7e-9d0c-1f2e3d4c5b6a7")), "'id'"),
        (json.dumps(valid_body(id="evt 1")), "'id'"),
        (json.dumps(valid_body(id="evt\u00001")), "'id'"),
        (json.dumps(valid_body(type="order." + "a" * 60)), "'type'"),
        (json.dumps(valid_body(source="/" + "s" * 255)), "'source'"),
        (json.dumps(valid_body(subject="s" * 256)), "'subject'"),
        (json.dumps(valid_body(subject="orders/\u00001")), "'subject'"),
        (json.dumps(valid_body(traceparent="00-" + "a" * 200)), "'traceparent'"),
        (json.dumps(valid_body(time="2026-01-02T03:04:05" + "0" * 100 + "Z")), "'time'"),
        (json.dumps(valid_body(data={"name": "a\u0000b"})), "data holds .* in: name"),
        (
            '{"specversion": "1.0", "id": "e1", "source": "/auth", "type": "user.registered", '
            '"time": "2026-01-02T03:04:05Z", "data": {"user": {"name": "\\ud800"}}}',
            "data holds .* in: user",
        ),
    ],
)
def test_parse_event_refuses_what_is_not_a_valid_cloudevent(raw, message):
    with pytest.raises(InvalidEvent, match=message):
        parse_event(raw)


def test_attributes_at_their_longest_still_parse():
    body = valid_body(
        id="e" * 36,
        type="order." + "a" * 58,
        source="/" + "s" * 254,
        subject="Ada Lovelace / orders/" + "s" * 233,
        requestid="r" * 128,
    )
    event = parse_event(json.dumps(body))
    assert (len(event.id), len(event.type), len(event.source), len(event.subject)) == (
        36,
        64,
        255,
        255,
    )


def test_new_event_refuses_a_type_no_consumer_could_store():
    with pytest.raises(ValueError, match="bad event type"):
        new_event("order." + "a" * 60, "/orders", {})


def test_parse_event_refuses_oversized_bodies_before_parsing_them():
    raw = json.dumps(valid_body(data={"blob": "x" * MAX_EVENT_BYTES}))
    with pytest.raises(InvalidEvent, match="too large"):
        parse_event(raw)


def test_invalid_event_is_a_value_error_so_generic_handlers_still_catch_it():
    assert issubclass(InvalidEvent, ValueError)
