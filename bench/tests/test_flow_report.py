"""docs/flows.md and its chart show the hops `make flow-trace` traces, from the committed run."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from bench import flow_report
from bench.flow_report import HOP_INSTANTS, HOPS, SOURCES

KEYS = [key for key, _process, _what in HOPS]


def committed_trace() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(flow_report.TRACE_JSON.read_text())
    return data


def test_every_hop_has_its_two_instants_and_a_source() -> None:
    assert list(HOP_INSTANTS) == KEYS
    assert list(SOURCES) == KEYS


def test_the_documented_table_lists_the_hops_the_script_traces_in_its_order() -> None:
    assert flow_report.documented_hops(flow_report.DOC.read_text()) == KEYS


def test_the_documented_table_is_the_one_the_committed_trace_gives() -> None:
    doc = flow_report.DOC.read_text()
    assert flow_report.table(committed_trace()) in doc


def test_the_committed_trace_has_every_instant_and_the_order_took_positive_time() -> None:
    trace = committed_trace()
    needed = {name for pair in HOP_INSTANTS.values() for name in pair}
    assert needed <= set(trace["instants_ns"])
    hops = {hop.key: hop for hop in flow_report.hops(trace)}
    assert hops["client"].start_ms == 0 and hops["client"].ms > 0
    # The synchronous hops nest: each inside the one that called it.
    for outer, inner in (
        ("client", "edge"),
        ("gateway", "gateway-call"),
        ("orders", "orders-transaction"),
    ):
        assert hops[outer].start_ms <= hops[inner].start_ms + 1  # nginx logs in whole ms
        assert hops[inner].end_ms <= hops[outer].end_ms + 1


def test_the_committed_chart_is_a_png_drawn_for_that_trace() -> None:
    header = flow_report.WATERFALL.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (1200, 900)


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
