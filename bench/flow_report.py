"""One order's journey as hops: built from what bench/flow_trace.py collected, charted, written.

The collection (spans, log lines, database rows, what the receivers saw) is a JSON file,
`docs/flows/trace.json`; this module turns it into the hops, the waterfall PNG and the
generated parts of docs/flows.md. `python -m bench.flow_report` redraws both from the JSON
without running the suite again.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "flows.md"
TRACE_JSON = ROOT / "docs" / "flows" / "trace.json"
WATERFALL = ROOT / "docs" / "flows" / "waterfall.png"

# Every hop of the journey, in order: (key, process, what the bar spans). The keys are the
# first column of the table in docs/flows.md (a test keeps the two in step). Each hop's
# start and end are instants taken from the named source in `instants()`.
HOPS: tuple[tuple[str, str, str], ...] = (
    ("client", "the client", "POST /api/v1/orders sent -> 201 read"),
    ("edge", "nginx", "request read -> response sent (its access line)"),
    ("gateway", "gateway", "its request span (token, rate limit, proxy)"),
    ("gateway-call", "gateway", "its call to orders (client span)"),
    ("orders", "orders", "its request span"),
    ("orders-transaction", "orders", "transaction: order, lines, outbox row; begin -> commit"),
    ("relay-publish", "orders.relay", "commit -> event routed by the broker (poll + publish)"),
    ("relay-confirm", "orders.relay", "routed -> publisher confirm, row marked sent"),
    ("broker-consumer", "RabbitMQ", "routed -> the consumer's inbox row (queue, prefetch)"),
    ("inbox-transaction", "notifications.consume", "inbox row -> commit, ack, its log line"),
    ("delivery-email", "notifications.deliver", "event handled -> mail stored by the SMTP server"),
    ("smtp-recorded", "notifications.deliver", "mail accepted -> delivery recorded sent"),
    ("delivery-webhook", "notifications.deliver", "event handled -> webhook request received"),
    ("webhook-recorded", "notifications.deliver", "webhook answered -> delivery recorded sent"),
)
# Where each hop's two instants come from (names of `instants()`).
HOP_INSTANTS: dict[str, tuple[str, str]] = {
    "client": ("client_sent", "client_read"),
    "edge": ("edge_start", "edge_end"),
    "gateway": ("gateway_start", "gateway_end"),
    "gateway-call": ("gateway_call_start", "gateway_call_end"),
    "orders": ("orders_start", "orders_end"),
    "orders-transaction": ("transaction_begin", "transaction_commit"),
    "relay-publish": ("transaction_commit", "routed"),
    "relay-confirm": ("routed", "outbox_sent"),
    "broker-consumer": ("routed", "inbox_row"),
    "inbox-transaction": ("inbox_row", "event_handled"),
    "delivery-email": ("event_handled", "mail_stored"),
    "smtp-recorded": ("mail_stored", "email_sent"),
    "delivery-webhook": ("event_handled", "webhook_received"),
    "webhook-recorded": ("webhook_received", "webhook_sent"),
}
SOURCES: dict[str, str] = {
    "client": "the script's clock",
    "edge": "nginx access line ($msec, $request_time; ms)",
    "gateway": "OTLP span",
    "gateway-call": "OTLP span",
    "orders": "OTLP span",
    "orders-transaction": "OTLP span (db.transaction)",
    "relay-publish": "span end; a tap queue's delivery time",
    "relay-confirm": "tap; outbox.sent_at",
    "broker-consumer": "tap; inbox.received_at",
    "inbox-transaction": "inbox.received_at; consumer log line (ms)",
    "delivery-email": "log line (ms); the mail file's name (µs)",
    "smtp-recorded": "mail file; deliveries.sent_at",
    "delivery-webhook": "log line (ms); the receiver's clock",
    "webhook-recorded": "receiver's clock; deliveries.sent_at",
}


@dataclass(frozen=True)
class Hop:
    """One bar of the waterfall: ms since the client sent the order."""

    key: str
    process: str
    what: str
    start_ms: float
    end_ms: float

    @property
    def ms(self) -> float:
        """How long the hop took."""
        return self.end_ms - self.start_ms


def hops(collected: Mapping[str, Any]) -> list[Hop]:
    """The hops of a collection, times relative to the client's send."""
    at: dict[str, int] = collected["instants_ns"]
    origin = at["client_sent"]
    out = []
    for key, process, what in HOPS:
        start, end = HOP_INSTANTS[key]
        out.append(Hop(key, process, what, (at[start] - origin) / 1e6, (at[end] - origin) / 1e6))
    return out


def table(collected: Mapping[str, Any]) -> str:
    """The per-hop table (Markdown)."""
    lines = [
        "| hop | process | from -> to | starts at (ms) | takes (ms) | source |",
        "|---|---|---|---:|---:|---|",
    ]
    for hop in hops(collected):
        lines.append(
            f"| `{hop.key}` | {hop.process} | {hop.what} | {hop.start_ms:.1f} "
            f"| {hop.ms:.1f} | {SOURCES[hop.key]} |"
        )
    return "\n".join(lines)


def log_lines(collected: Mapping[str, Any]) -> str:
    """The order as each process logged it (a code block, one line per record)."""
    rows = []
    for record in collected["log_lines"]:
        fields = {k: v for k, v in record.items() if k not in ("time", "process", "message")}
        detail = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
        rows.append(f"{record['time']}  {record['process']:<22} {record['message']}  {detail}")
    return "```\n" + "\n".join(rows) + "\n```"


def chart(collected: Mapping[str, Any], path: Path) -> None:
    """The waterfall: the whole journey, and below it the synchronous part zoomed in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = hops(collected)
    synchronous = [h for h in bars if h.key in _SYNCHRONOUS]
    fig, (whole, zoom) = plt.subplots(
        2, 1, figsize=(12, 9), gridspec_kw={"height_ratios": [len(bars), len(synchronous)]}
    )
    for axis, shown, title in (
        (whole, bars, "one order, end to end (ms after the client sent it)"),
        (zoom, synchronous, "the request itself, zoomed in"),
    ):
        labels = [f"{h.key} ({h.process})" for h in shown]
        ys = list(range(len(shown)))[::-1]
        span = max(h.end_ms for h in shown) or 1.0
        for y, hop in zip(ys, shown, strict=True):
            color = _COLORS.get(hop.process, "#8172b3")
            axis.barh(y, max(hop.ms, span / 400), left=hop.start_ms, color=color, height=0.6)
            axis.text(hop.end_ms + span / 100, y, f"{hop.ms:.1f} ms", va="center", fontsize=8)
        axis.set_yticks(ys, labels, fontsize=8)
        axis.set_xlim(0, span * 1.15)
        axis.set_xlabel("ms")
        axis.set_title(title, fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    meta = collected.get("meta", {})
    fig.suptitle(
        f"make flow-trace, {meta.get('started', '?')}: order {meta.get('order_id', '?')}",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


_SYNCHRONOUS = {"client", "edge", "gateway", "gateway-call", "orders", "orders-transaction"}
_COLORS = {
    "the client": "#4c72b0",
    "nginx": "#55a868",
    "gateway": "#dd8452",
    "orders": "#c44e52",
    "orders.relay": "#937860",
    "RabbitMQ": "#da8bc3",
    "notifications.consume": "#8c8c8c",
    "notifications.deliver": "#ccb974",
}


def replace_block(text: str, name: str, body: str) -> str:
    """Text with the generated block `name` (between its two markers) set to body."""
    pattern = re.compile(
        rf"(<!-- flow-trace:{name} -->\n).*?(\n<!-- /flow-trace:{name} -->)", re.DOTALL
    )
    if not pattern.search(text):
        raise ValueError(f"docs/flows.md has no flow-trace:{name} block")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)


def documented_hops(text: str) -> list[str]:
    """The hop keys of the table in the generated block of docs/flows.md, in order."""
    block = re.search(r"<!-- flow-trace:table -->\n(.*?)\n<!-- /flow-trace:table -->", text, re.S)
    if block is None:
        return []
    return re.findall(r"^\| `([a-z-]+)` \|", block.group(1), re.M)


def write(collected: Mapping[str, Any], *, doc: Path = DOC, png: Path = WATERFALL) -> None:
    """The PNG, and the table, log lines and run line of docs/flows.md."""
    chart(collected, png)
    meta = collected.get("meta", {})
    summary = (
        f"Run of {meta.get('started', '?')} on this machine (load average before: "
        f"{meta.get('load_before', '?')}); order `{meta.get('order_id', '?')}`, "
        f"request id `{meta.get('request_id', '?')}`, trace id `{meta.get('trace_id', '?')}`."
        "\n\n![One order, end to end: a waterfall of every hop](flows/waterfall.png)"
    )
    text = doc.read_text()
    text = replace_block(text, "run", summary)
    text = replace_block(text, "table", table(collected))
    text = replace_block(text, "logs", log_lines(collected))
    doc.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Redraw the chart and the doc's generated blocks from docs/flows/trace.json."""
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else TRACE_JSON
    write(json.loads(source.read_text()))
    sys.stdout.write(table(json.loads(source.read_text())) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
