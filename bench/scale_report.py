"""The scale run's record: bench/results/scale-<date>.json, its chart, and docs/scale.md.

python -m bench.scale_report bench/results/scale-<date>.json    (rewrite chart and section)
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MARKDOWN = ROOT / "docs" / "scale.md"
BEGIN = "<!-- scale:results:begin (written by `make bench-scale`; edit outside these markers) -->"
END = "<!-- scale:results:end -->"
# The goal: no request's p99 grows by more than this from the smallest size to the largest.
P99_GROWTH_LIMIT = 1.5
MIB = 2**20


def finish(results: Mapping[str, Any], started: datetime) -> Path:
    """Write the JSON, the chart and the Markdown section; the JSON's path."""
    stamp = started.strftime("%Y-%m-%dT%H%M%SZ")
    path = RESULTS / f"scale-{stamp}.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    write_all(path, results)
    return path


def write_all(path: Path, results: Mapping[str, Any]) -> None:
    """The chart next to the JSON and the section of docs/scale.md."""
    chart(path.with_suffix(".png"), results)
    update_markdown(MARKDOWN, markdown_section(path, results))


def _sizes(results: Mapping[str, Any]) -> list[str]:
    return [s for s in sorted(results["sizes"], key=int) if "requests" in results["sizes"][s]]


def _titles() -> dict[str, str]:
    from bench.scale import REQUESTS

    return {key: title for key, (title, _, _) in REQUESTS.items()}


def p99_ratios(results: Mapping[str, Any]) -> dict[str, float]:
    """Each request's median p99 at the largest size over that at the smallest."""
    sizes = _sizes(results)
    if len(sizes) < 2:
        return {}
    first, last = results["sizes"][sizes[0]], results["sizes"][sizes[-1]]
    ratios = {}
    for key in last["requests"]:
        before = first["requests"][key]["summary"]["p99_ms"]["median"]
        after = last["requests"][key]["summary"]["p99_ms"]["median"]
        ratios[key] = after / before if before else math.nan
    return ratios


def chart(path: Path, results: Mapping[str, Any]) -> None:
    """p50/p99 and throughput per request against orders held, and the event paths' rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = _sizes(results)
    if not sizes:
        return
    xs = [int(s) for s in sizes]
    titles = _titles()
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), constrained_layout=True)
    p99_axis, p50_axis, rps_axis, events_axis = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    for key, title in titles.items():
        cells = [results["sizes"][s]["requests"][key]["summary"] for s in sizes]
        p99_axis.plot(xs, [c["p99_ms"]["median"] for c in cells], marker="o", label=title)
        p50_axis.plot(xs, [c["p50_ms"]["median"] for c in cells], marker="o", label=title)
        rps_axis.plot(xs, [c["rps"]["median"] for c in cells], marker="o", label=title)
    for name, label in (("relay", "outbox relay"), ("consumer", "notifications consumer")):
        events_axis.plot(
            xs,
            [results["sizes"][s][name]["summary"]["median"] for s in sizes],
            marker="o",
            label=f"{label}, events/s",
        )
    for axis, ylabel, title in (
        (p99_axis, "p99, ms (median of rounds)", "p99 against data size"),
        (p50_axis, "p50, ms (median of rounds)", "p50 against data size"),
        (rps_axis, "requests/s (median of rounds)", "Throughput against data size"),
        (events_axis, "events/s (median of rounds)", "Event paths against data size"),
    ):
        axis.set_xscale("log")
        axis.set_xlabel("orders in the database")
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.grid(alpha=0.3)
    p99_axis.set_yscale("log")
    p50_axis.set_yscale("log")
    rps_axis.set_yscale("log")
    p99_axis.legend(fontsize=7)
    events_axis.legend(fontsize=8)
    fig.suptitle(f"make bench-scale — {results['meta']['started']}")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _num(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _cell(summary: Mapping[str, float], digits: int = 1) -> str:
    low, high = _num(summary["min"], digits), _num(summary["max"], digits)
    return f"{_num(summary['median'], digits)} ({low}–{high})"


def request_table(results: Mapping[str, Any]) -> list[str]:
    """One row per request: p50, p99, req/s at each size, and the p99 ratio."""
    sizes = _sizes(results)
    ratios = p99_ratios(results)
    head = ["request"]
    for s in sizes:
        head += [f"p50 ms @ {int(s):,}", f"p99 ms @ {int(s):,}", f"req/s @ {int(s):,}"]
    head.append(f"p99 {int(sizes[-1]):,} / {int(sizes[0]):,}" if len(sizes) > 1 else "p99 ratio")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, title in _titles().items():
        row = [title]
        for s in sizes:
            c = results["sizes"][s]["requests"][key]["summary"]
            row += [
                _num(c["p50_ms"]["median"], 1),
                _cell(c["p99_ms"]),
                _num(c["rps"]["median"]),
            ]
        ratio = ratios.get(key, math.nan)
        flag = " **over 1.5x**" if ratio > P99_GROWTH_LIMIT else ""
        row.append(f"{_num(ratio, 2)}{flag}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def events_table(results: Mapping[str, Any]) -> list[str]:
    """Relay and consumer rates per size, and the load average around each size's runs."""
    lines = [
        "| orders | outbox relay events/s | consumer events/s | errors (all requests) |"
        " seeded in | load average (before; after each round) |",
        "|---|---|---|---|---|---|",
    ]
    for s in _sizes(results):
        size = results["sizes"][s]
        errors = sum(c["summary"]["errors"] for c in size["requests"].values())
        lines.append(
            f"| {int(s):,} | {_cell(size['relay']['summary'], 0)} | "
            f"{_cell(size['consumer']['summary'], 0)} | {errors} | {size['seed_seconds']} s "
            f"(+ VACUUM {size['vacuum_seconds']} s) | {size['load_before']}; "
            f"{'; '.join(size['load_average'][1:])} |"
        )
    return lines


def tables_table(results: Mapping[str, Any], size: str) -> list[str]:
    """Every table at one size: rows and MiB after the seed, and after the purge jobs."""
    data = results["sizes"][size]
    lines = [
        "| database | table | rows seeded | table + indexes MiB | rows after purge |"
        " table + indexes MiB after purge | largest index MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for service in ("auth", "orders", "notifications"):
        after = {t["table"]: t for t in data["tables_purged"][service]}
        for t in data["tables_seeded"][service]:
            if t["table"] == "alembic_version":
                continue
            a = after.get(t["table"], t)
            largest = max(t["indexes"].items(), key=lambda kv: kv[1], default=("", 0))
            lines.append(
                f"| {service} | {t['table']} | {t['rows']:,} | "
                f"{(t['table_bytes'] + t['index_bytes']) / MIB:,.1f} | {a['rows']:,} | "
                f"{(a['table_bytes'] + a['index_bytes']) / MIB:,.1f} | "
                f"{largest[0]} {largest[1] / MIB:,.1f} |"
            )
    return lines


def markdown_section(path: Path, results: Mapping[str, Any]) -> str:
    """The results section: command, requests, events, tables."""
    meta = results["meta"]
    sizes = _sizes(results)
    listed = ", ".join(f"{int(s):,}" for s in sizes)
    out = [
        BEGIN,
        "",
        f"Run **{meta['started']}**: `{meta['command']}` (sizes {listed}"
        f" orders; {meta['rounds']} rounds of every measurement per size, median (min–max); wrk"
        f" {meta['wrk']}; gunicorn {meta['gunicorn']}; {meta['cpus']} CPUs, shared). Results:"
        f" `{path.relative_to(ROOT)}`, chart `{path.with_suffix('.png').relative_to(ROOT)}`.",
        "",
        "### Requests against data size",
        "",
        *request_table(results),
        "",
        "### Event paths, errors, load",
        "",
        *events_table(results),
        "",
    ]
    for s in sizes:
        out += [f"### Tables at {int(s):,} orders", "", *tables_table(results, s), ""]
    out.append(END)
    return "\n".join(out)


def update_markdown(path: Path, section: str) -> None:
    """Replace the section between the markers (the prose around it is kept)."""
    text = path.read_text() if path.exists() else f"# Scale\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + section + tail)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the chart and the Markdown section from a results file."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m bench.scale_report bench/results/scale-<date>.json")
    path = Path(args[0]).resolve()
    write_all(path, json.loads(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
