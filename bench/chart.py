"""The chart next to each run's JSON: throughput and latency per path, and the sustained run
over time (matplotlib, rendered headless)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.report import ENDPOINTS, PATHS


def chart(path: Path, results: Mapping[str, Any]) -> None:
    """Throughput (with min-max) and p50/p99 latency per request and path and, when the run
    had one, the sustained open-loop run over time, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    http = results.get("http", {})
    endpoints = [e for e in ENDPOINTS if e in http]
    paths = list(PATHS)
    colors = {"direct": "#4c72b0", "gateway": "#dd8452", "edge": "#55a868"}
    width = 0.8 / len(paths)
    sustained = results.get("events", {}).get("sustained", {})
    rows = 3 if sustained.get("runs") else 2
    fig, axes = plt.subplots(rows, 1, figsize=(11, 4 * rows), constrained_layout=True)
    top, bottom = axes[0], axes[1]
    for i, path_name in enumerate(paths):
        xs, rps, low, high, p50, p99 = [], [], [], [], [], []
        for x, endpoint in enumerate(endpoints):
            cell = http[endpoint].get(path_name, {})
            if "summary" not in cell:
                continue
            s = cell["summary"]
            xs.append(x + (i - (len(paths) - 1) / 2) * width)
            rps.append(s["rps"]["median"])
            low.append(s["rps"]["median"] - s["rps"]["min"])
            high.append(s["rps"]["max"] - s["rps"]["median"])
            p50.append(s["p50_ms"]["median"])
            p99.append(s["p99_ms"]["median"])
        if not xs:
            continue
        label = PATHS[path_name]
        top.bar(xs, rps, width, yerr=[low, high], capsize=3, label=label, color=colors[path_name])
        bottom.bar(xs, p99, width, color=colors[path_name], alpha=0.45, label=f"{label} p99")
        bottom.bar(xs, p50, width * 0.5, color=colors[path_name], label=f"{label} p50")
    labels = [ENDPOINTS[e].replace(", ", ",\n") for e in endpoints]
    for axis in (top, bottom):
        axis.set_xticks(range(len(endpoints)), labels, fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    top.set_ylabel("requests/s (median, min–max)")
    top.set_title(f"Throughput per path — {results['meta']['started']} ({results['meta']['mode']})")
    top.legend()
    bottom.set_ylabel("latency, ms")
    bottom.set_yscale("log")
    bottom.set_title("Latency per path: p50 (narrow) and p99 (wide)")
    bottom.legend(fontsize=7, ncol=3)
    if rows == 3:
        _sustained_panel(axes[2], sustained)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sustained_panel(axis: Any, sustained: Mapping[str, Any]) -> None:
    """Notifications per second (and POSTs sent per second) with each second's p99, per run."""
    latency = axis.twinx()
    for n, run in enumerate(sustained["runs"], start=1):
        buckets = run.get("per_second", [])
        seconds = [b["second"] for b in buckets]
        axis.plot(
            seconds,
            [b["notified"] for b in buckets],
            color="#4c72b0",
            alpha=0.8,
            label="notified/s" if n == 1 else None,
        )
        axis.plot(
            seconds,
            [b["sent"] for b in buckets],
            color="#4c72b0",
            alpha=0.4,
            linestyle=":",
            label="POSTs sent/s" if n == 1 else None,
        )
        latency.plot(
            seconds,
            [b["p99_ms"] for b in buckets],
            color="#c44e52",
            alpha=0.8,
            label="p99 of the orders sent that second" if n == 1 else None,
        )
    axis.axhline(sustained["rate"], color="#4c72b0", linewidth=0.8, linestyle="--")
    # Where the schedule ended: what follows is the backlog draining.
    axis.axvline(sustained["seconds"], color="grey", linewidth=0.8, linestyle="--")
    axis.set_xlabel("seconds since the first POST was due")
    axis.set_ylabel("per second")
    latency.set_ylabel("p99, ms (POST sent → notification row)")
    if any(
        (b.get("p99_ms") or 0) > 0 for run in sustained["runs"] for b in run.get("per_second", [])
    ):
        latency.set_yscale("log")  # (a run that notified nothing has no latency to scale)
    axis.set_title(
        f"Sustained {sustained['rate']:.0f} orders/s through the gateway for "
        f"{sustained['seconds']:.0f} s, open loop ({len(sustained['runs'])} runs)"
    )
    handles, labels = axis.get_legend_handles_labels()
    more, more_labels = latency.get_legend_handles_labels()
    axis.legend(handles + more, labels + more_labels, fontsize=7, loc="lower center")
    axis.grid(alpha=0.3)
