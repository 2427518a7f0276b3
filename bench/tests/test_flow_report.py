"""The hops `make flow-trace` traces, as bench/flow_report.py computes and documents them."""

from __future__ import annotations

import pytest

from bench import flow_report
from bench.flow_report import HOP_INSTANTS, HOPS, SOURCES

KEYS = [key for key, _process, _what in HOPS]


def test_every_hop_has_its_two_instants_and_a_source() -> None:
    assert list(HOP_INSTANTS) == KEYS
    assert list(SOURCES) == KEYS


def test_hops_are_measured_from_the_clients_send() -> None:
    instants = {name: 1_000_000_000 for pair in HOP_INSTANTS.values() for name in pair}
    instants.update({"client_sent": 1_000_000_000, "client_read": 1_025_000_000})
    instants.update({"webhook_received": 1_900_000_000, "webhook_sent": 1_950_000_000})

    hops = {hop.key: hop for hop in flow_report.hops({"instants_ns": instants})}

    assert (hops["client"].start_ms, hops["client"].ms) == (0, 25)
    assert (hops["webhook-recorded"].start_ms, hops["webhook-recorded"].ms) == (900, 50)


def test_a_generated_block_is_replaced_and_the_text_around_it_kept() -> None:
    text = "before\n<!-- flow-trace:table -->\nold\n<!-- /flow-trace:table -->\nafter\n"

    replaced = flow_report.replace_block(text, "table", "| `client` | x |")

    assert replaced == (
        "before\n<!-- flow-trace:table -->\n| `client` | x |\n<!-- /flow-trace:table -->\nafter\n"
    )
    assert flow_report.documented_hops(replaced) == ["client"]
    with pytest.raises(ValueError):
        flow_report.replace_block("no markers", "table", "x")
