"""The `dlq` command: see what died and why, put it back, or throw it away."""

import json

import pika
import pytest

from shared.dlq import main
from shared.events import new_event
from shared.messaging import Consumer, Publisher, declare_topology, dlq_name, queue_name
from shared.tests.conftest import drain, queue_depth, running, unique_type
from tests.support import wait_for

pytestmark = pytest.mark.integration


def park_in_dlq(channel, consumer, event, reason="handler-failed"):
    """Put a message in the DLQ the way the consumer does."""
    channel.basic_publish(
        "",
        dlq_name(consumer),
        event.to_json(),
        pika.BasicProperties(
            message_id=event.id,
            type=event.type,
            delivery_mode=2,
            headers={"x-dlq-reason": reason, "x-retries": 3, "requestid": "req-1"},
        ),
    )


@pytest.fixture
def topology(channel, consumer_name):
    declare_topology(channel, consumer_name, [], delivery_limit=5, retry_delays=[0.05])
    return consumer_name


def test_list_shows_the_poison_event_and_replay_puts_it_back_on_the_main_queue(
    amqp_url, channel, consumer_name, capsys
):
    event_type = unique_type("order")
    poison = new_event(event_type, "/orders", {"poison": True})

    def always_fails(event):
        raise ValueError("no such customer")

    declare_topology(channel, consumer_name, [event_type], delivery_limit=5, retry_delays=[0.05])
    consumer = Consumer(amqp_url, consumer_name, [event_type], always_fails, retry_delays=(0.05,))
    with running(consumer), Publisher(amqp_url) as publisher:
        assert publisher.publish(poison)
        wait_for(lambda: queue_depth(channel, dlq_name(consumer_name)) == 1, timeout=15)

    assert main(["--amqp-url", amqp_url, "list", consumer_name]) == 0
    out = capsys.readouterr().out
    assert f"{dlq_name(consumer_name)}: 1 message(s)" in out
    assert poison.id in out and event_type in out and "handler-failed" in out
    assert queue_depth(channel, dlq_name(consumer_name)) == 1  # listing consumed nothing

    assert main(["--amqp-url", amqp_url, "show", consumer_name, poison.id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["event"]["id"] == poison.id
    assert "ValueError: no such customer" in shown["headers"]["x-error"]

    assert main(["--amqp-url", amqp_url, "replay", consumer_name, "--all"]) == 0
    assert "replayed 1 message(s)" in capsys.readouterr().out
    assert queue_depth(channel, dlq_name(consumer_name)) == 0
    [(properties, body)] = drain(channel, queue_name(consumer_name))
    assert json.loads(body)["id"] == poison.id
    assert "x-retries" not in properties.headers  # a fresh set of retries
    assert "x-replayed-at" in properties.headers


def test_replay_by_id_leaves_the_other_dead_letters_in_place(amqp_url, channel, topology, capsys):
    first, second = (new_event("order.created", "/orders", {}) for _ in range(2))
    park_in_dlq(channel, topology, first)
    park_in_dlq(channel, topology, second)

    assert main(["--amqp-url", amqp_url, "replay", topology, "--id", second.id]) == 0
    assert [json.loads(b)["id"] for _, b in drain(channel, queue_name(topology))] == [second.id]
    remaining = drain(channel, dlq_name(topology))
    assert [json.loads(b)["id"] for _, b in remaining] == [first.id]


def test_replay_of_an_unknown_id_exits_1(amqp_url, topology, capsys):
    assert main(["--amqp-url", amqp_url, "replay", topology, "--id", "nope"]) == 1
    assert "nope" in capsys.readouterr().err


def test_show_of_an_unknown_id_exits_1(amqp_url, topology, capsys):
    assert main(["--amqp-url", amqp_url, "show", topology, "nope"]) == 1


def test_a_malformed_dead_letter_is_shown_as_raw_text(amqp_url, channel, topology, capsys):
    channel.basic_publish(
        "",
        dlq_name(topology),
        b"{oops",
        pika.BasicProperties(message_id="m-1", headers={"x-dlq-reason": "malformed"}),
    )
    assert main(["--amqp-url", amqp_url, "list", topology]) == 0
    assert "m-1  -  malformed" in capsys.readouterr().out
    assert main(["--amqp-url", amqp_url, "show", topology, "m-1"]) == 0
    assert json.loads(capsys.readouterr().out)["body"] == "{oops"


def test_purge_needs_yes_and_then_empties_the_dlq(amqp_url, channel, topology, capsys):
    park_in_dlq(channel, topology, new_event("order.created", "/orders", {}))
    assert main(["--amqp-url", amqp_url, "purge", topology]) == 2
    assert queue_depth(channel, dlq_name(topology)) == 1
    assert main(["--amqp-url", amqp_url, "purge", topology, "--yes"]) == 0
    assert "purged 1 message(s)" in capsys.readouterr().out
    assert queue_depth(channel, dlq_name(topology)) == 0


def test_an_unknown_consumer_exits_3(amqp_url, capsys):
    assert main(["--amqp-url", amqp_url, "list", "no-such-consumer"]) == 3
    assert "no dead-letter queue" in capsys.readouterr().err


def test_replay_without_a_selection_is_a_usage_error(amqp_url, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--amqp-url", amqp_url, "replay", "orders"])
    assert exit_info.value.code == 2


def test_no_broker_url_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("AMQP_URL", raising=False)
    assert main(["list", "orders"]) == 2
