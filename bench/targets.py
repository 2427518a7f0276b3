"""The throughput issue's targets: each measured figure, its baseline in the same run, and
how far the figure is from the target."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NAN = float("nan")


def ratio(a: float, b: float) -> float:
    """a / b, NaN when either is missing or b is zero."""
    if a is None or b is None or math.isnan(a) or math.isnan(b) or not b:
        return NAN
    return a / b


def _median(results: Mapping[str, Any], endpoint: str, path: str, key: str = "rps") -> float:
    cell = results.get("http", {}).get(endpoint, {}).get(path, {})
    summary = cell.get("summary")
    return float(summary[key]["median"]) if summary else NAN


def _event_median(results: Mapping[str, Any], name: str, key: str | None = None) -> float:
    summary = results.get("events", {}).get(name, {}).get("summary", {})
    if key is not None:
        summary = summary.get(key, {})
    value = summary.get("median")
    return NAN if value is None else float(value)


def _baseline(label: str, measured: float, unit: str, suite: float) -> dict[str, Any] | None:
    if math.isnan(measured):
        return None
    return {"label": label, "measured": measured, "unit": unit, "ratio": ratio(suite, measured)}


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value, how far it is (measured / required) and, where
    the issue asks for one, the baseline measured in the same run with suite / baseline."""
    direct = _median(results, "get_one", "direct")
    events = results.get("events", {})
    post = _median(results, "post", "direct")
    consumer = _event_median(results, "consumer")
    e2e_summary = events.get("e2e", {}).get("50", {}).get("summary", {})
    # From the moment the POST was sent; results written before that key existed only
    # have the latency counted from the POST's answer.
    e2e_p99 = e2e_summary.get("from_send_p99_ms", e2e_summary.get("p99_ms", {})).get("median")
    sustained = events.get("sustained", {})
    offered = f"{sustained.get('rate', 300):.0f}/s offered for {sustained.get('seconds', 60):.0f} s"
    lost = (
        float(sum(int(r.get("missing", 0)) for r in sustained["runs"]))
        if sustained.get("runs")
        else NAN
    )
    outage = events.get("outage", {})
    backlog = int(outage.get("events", 10_000) or 10_000)

    def item(
        target: str,
        required: float,
        measured: float | None,
        higher: bool,
        baseline: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        value = NAN if measured is None else float(measured)
        return {
            "target": target,
            "required": required,
            "measured": value,
            "higher_is_better": higher,
            **({"baseline": baseline} if baseline else {}),
        }

    items = [
        item(
            "POST an order, direct, req/s",
            500.0,
            post,
            True,
            _baseline(
                "bare Flask + psycopg INSERT (commit)",
                _median(results, "baseline_post", "direct"),
                "req/s",
                post,
            ),
        ),
        item(
            "notifications consumer, order.created, one process, events/s",
            1500.0,
            consumer,
            True,
            _baseline(
                "plain pika consumer, one committed row per message",
                _event_median(results, "consumer_baseline"),
                "events/s",
                consumer,
            ),
        ),
        item("mails to the SMTP sink, one delivery process, mails/s", 500.0,
             _event_median(results, "mail"), True),
        item(f"orders through the gateway and notified, per s ({offered})", 300.0,
             _event_median(results, "sustained", "rate"), True),
        item(f"p99 POST sent → notification row, ms ({offered})", 500.0,
             _event_median(results, "sustained", "from_send_p99_ms"), False),
        item(f"orders lost ({offered})", 0.0, lost, False),
        item("end-to-end p99 at 50 orders/s, ms", 60.0, e2e_p99, False),
        item(f"backlog of {backlog:,} events after a broker outage, drained in s", 15.0,
             _event_median(results, "outage", "drain_seconds"), False),
        item("gateway / direct, GET one order", 0.5,
             ratio(_median(results, "get_one", "gateway"), direct), True),
        item("nginx fast path / direct, GET one order", 0.75,
             ratio(_median(results, "get_one", "edge"), direct), True),
        item("suite direct / bare baseline, GET one order", 0.7,
             ratio(direct, _median(results, "baseline", "direct")), True),
        item("outbox relay, events/s", 3000.0, _event_median(results, "relay"), True),
        item("errors (non-2xx, socket errors, lost notifications) in every run", 0.0,
             float(total_errors(results)), False),
    ]  # fmt: skip
    for entry in items:
        _judge(entry)
    return items


def _judge(item: dict[str, Any]) -> None:
    measured, required = item["measured"], item["required"]
    if math.isnan(measured):
        item["met"] = None
        item["how_far"] = "not run"
    elif item["higher_is_better"]:
        item["met"] = measured >= required
        item["how_far"] = f"{measured / required:.0%} of the target"
    else:
        item["met"] = measured <= required
        item["how_far"] = (
            "none"
            if required == 0 and measured == 0
            else f"{measured:.0f} too many"
            if required == 0
            else f"{measured / required:.0%} of the limit"
        )


def total_errors(results: Mapping[str, Any]) -> int:
    """Failed requests over every wrk run, open-loop POST and outage POST of the run, plus
    the orders whose notification never appeared (an event lost is an error too)."""
    count = 0
    for paths in results.get("http", {}).values():
        for cell in paths.values():
            count += sum(int(r["errors"]) for r in cell.get("runs", []))
    events = results.get("events", {})
    open_loop_runs = [*events.get("e2e", {}).values(), events.get("sustained", {})]
    for run in open_loop_runs:
        count += sum(int(r["errors"]) + int(r.get("missing", 0)) for r in run.get("runs", []))
    count += int(events.get("outage", {}).get("post_errors", 0) or 0)
    return count
