"""Results of a benchmark run: summaries, targets, the Markdown section and the chart."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:results:begin (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:results:end -->"
# `make bench-quick` writes its own section: a 1-second smoke run must not replace the
# figures of the last full run (and the analysis written around them).
QUICK_BEGIN = "<!-- bench:quick:begin (written by `make bench-quick`; edit outside the markers) -->"
QUICK_END = "<!-- bench:quick:end -->"

ENDPOINTS = {
    "get_one": "GET one order",
    "page": "GET a page of 20 orders",
    "post": "POST an order",
    "login": "POST login (argon2id)",
    "baseline": "bare Flask + psycopg, one row by PK",
}
PATHS = {"direct": "direct", "gateway": "gateway", "edge": "nginx edge"}


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median with the spread (min-max) of several runs."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {
        "median": statistics.median(clean),
        "min": min(clean),
        "max": max(clean),
        "n": len(clean),
    }


def http_cell(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summary of the wrk runs of one endpoint on one path."""
    return {
        "rps": summarize([r["rps"] for r in runs]),
        "p50_ms": summarize([r["p50_ms"] for r in runs]),
        "p99_ms": summarize([r["p99_ms"] for r in runs]),
        "errors": sum(int(r["errors"]) for r in runs),
        "requests": sum(int(r["requests"]) for r in runs),
        "generator_cpu_share": summarize([r["generator_cpu_share"] for r in runs]),
    }


def _median(results: Mapping[str, Any], endpoint: str, path: str, key: str = "rps") -> float:
    cell = results.get("http", {}).get(endpoint, {}).get(path, {})
    summary = cell.get("summary")
    return float(summary[key]["median"]) if summary else float("nan")


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and how far it is (measured / required)."""
    direct = _median(results, "get_one", "direct")
    events = results.get("events", {})

    def ratio(a: float, b: float) -> float:
        return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")

    relay = events.get("relay", {}).get("summary", {}).get("median", float("nan"))
    e2e_summary = events.get("e2e", {}).get("50", {}).get("summary", {})
    # From the moment the POST was sent; results written before that key existed only
    # have the latency counted from the POST's answer.
    e2e_p99 = e2e_summary.get("from_send_p99_ms", e2e_summary.get("p99_ms", {})).get("median")
    items: list[dict[str, Any]] = [
        {
            "target": "gateway / direct, GET one order",
            "required": 0.5,
            "measured": ratio(_median(results, "get_one", "gateway"), direct),
            "higher_is_better": True,
        },
        {
            "target": "nginx fast path / direct, GET one order",
            "required": 0.75,
            "measured": ratio(_median(results, "get_one", "edge"), direct),
            "higher_is_better": True,
        },
        {
            "target": "suite direct / bare baseline, GET one order",
            "required": 0.7,
            "measured": ratio(direct, _median(results, "baseline", "direct")),
            "higher_is_better": True,
        },
        {
            "target": "outbox relay, events/s",
            "required": 3000.0,
            "measured": float(relay),
            "higher_is_better": True,
        },
        {
            "target": "end-to-end p99 at 50 orders/s, ms",
            "required": 100.0,
            "measured": float("nan") if e2e_p99 is None else float(e2e_p99),
            "higher_is_better": False,
        },
        {
            "target": "errors (non-2xx, socket errors, lost notifications) in every run",
            "required": 0.0,
            "measured": float(total_errors(results)),
            "higher_is_better": False,
        },
    ]
    for item in items:
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
                else f"{measured:.0f} errors"
                if required == 0
                else f"{measured / required:.0%} of the limit"
            )
    return items


def total_errors(results: Mapping[str, Any]) -> int:
    """Failed requests over every wrk run, open-loop POST and outage POST of the run, plus
    the orders whose notification never appeared (an event lost is an error too)."""
    count = 0
    for paths in results.get("http", {}).values():
        for cell in paths.values():
            count += sum(int(r["errors"]) for r in cell.get("runs", []))
    events = results.get("events", {})
    for run in events.get("e2e", {}).values():
        count += sum(int(r["errors"]) + int(r.get("missing", 0)) for r in run.get("runs", []))
    count += int(events.get("outage", {}).get("post_errors", 0) or 0)
    return count


# -- Markdown ------------------------------------------------------------------------------


def _num(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _spread(summary: Mapping[str, float], digits: int = 0) -> str:
    if not summary or not summary.get("n"):
        return "n/a"
    return (
        f"{_num(summary['median'], digits)} "
        f"({_num(summary['min'], digits)}–{_num(summary['max'], digits)})"
    )


def http_table(results: Mapping[str, Any]) -> list[str]:
    """Rows: endpoint; columns: req/s and p50 / p99 per path."""
    header = ["request"]
    for label in PATHS.values():
        header += [f"{label} req/s", f"{label} p50 / p99 ms"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    http = results.get("http", {})
    for endpoint, label in ENDPOINTS.items():
        if endpoint not in http:
            continue
        row = [label]
        for path in PATHS:
            cell = http[endpoint].get(path)
            if cell is None:
                row += ["—", "—"]
            elif "not_run" in cell:
                row += ["not run", cell["not_run"]]
            else:
                s = cell["summary"]
                row += [
                    _spread(s["rps"]),
                    f"{_num(s['p50_ms']['median'], 1)} / {_num(s['p99_ms']['median'], 1)}",
                ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def generator_table(results: Mapping[str, Any]) -> list[str]:
    """wrk's own CPU per cell (share of one core) and the errors it saw."""
    lines = [
        "| request | path | wrk CPU (share of a core) | requests | errors |",
        "|---|---|---|---|---|",
    ]
    for endpoint, paths in results.get("http", {}).items():
        for path, cell in paths.items():
            if "summary" not in cell:
                continue
            s = cell["summary"]
            lines.append(
                f"| {ENDPOINTS.get(endpoint, endpoint)} | {PATHS.get(path, path)} | "
                f"{_spread(s['generator_cpu_share'], 2)} | {s['requests']:,} | {s['errors']} |"
            )
    return lines


def events_table(results: Mapping[str, Any]) -> list[str]:
    """Relay, consumer, end-to-end latency and the outage drain."""
    events = results.get("events", {})
    lines = ["| measurement | median (min–max) | notes |", "|---|---|---|"]
    relay = events.get("relay")
    if relay:
        lines.append(
            f"| outbox relay, events/s (persistent, confirmed) | {_spread(relay['summary'])} | "
            f"{relay['events']:,} rows per run, batch {relay['batch_size']}, "
            f"{relay['runs_count']} runs |"
        )
    consumer = events.get("consumer")
    if consumer:
        lines.append(
            f"| notifications consumer, events/s | {_spread(consumer['summary'])} | "
            f"{consumer['events']:,} order.created per run, prefetch 20, one consumer process |"
        )
    for rate, run in sorted(events.get("e2e", {}).items(), key=lambda kv: float(kv[0])):
        s = run["summary"]
        sent = (
            f"{_spread(s['from_send_p50_ms'], 1)} / {_spread(s['from_send_p99_ms'], 1)}"
            if "from_send_p99_ms" in s
            else "n/a"
        )
        lines.append(
            f"| end-to-end at {rate} orders/s, p50 / p99 ms | {sent} | "
            f"POST sent (gateway) → notification row; counted from the POST's answer instead: "
            f"{_num(s['p50_ms']['median'], 1)} / {_num(s['p99_ms']['median'], 1)}; "
            f"{run['orders']:,} orders per run, "
            f"max send lateness {_num(s['max_lateness_ms']['max'], 1)} ms, "
            f"{sum(r['errors'] for r in run['runs'])} errors, "
            f"{sum(r['missing'] for r in run['runs'])} missing |"
        )
    outage = events.get("outage")
    if outage:
        if "not_run" in outage:
            lines.append(f"| backlog drain after a broker outage | not run | {outage['not_run']} |")
        elif "summary" in outage:
            s = outage["summary"]
            lines.append(
                f"| backlog drain after a broker outage, s | {_spread(s['drain_seconds'], 1)} | "
                f"{outage['events']:,} orders placed while the broker was down for "
                f"{_spread(s['outage_seconds'])} s; first notification "
                f"{_spread(s['first_after_seconds'], 1)} s after it was back (reconnect "
                f"backoff), then {_spread(s['rate'])} events/s; {len(outage['runs'])} runs |"
            )
        else:  # results written when the outage ran once
            lines.append(
                f"| backlog drain after a broker outage, s | {_num(outage['drain_seconds'], 1)} | "
                f"{outage['events']:,} orders placed while the broker was down for "
                f"{_num(outage['outage_seconds'], 0)} s; first notification "
                f"{_num(outage['first_after_seconds'], 1)} s after it was back (reconnect "
                f"backoff), then {_num(outage['rate'], 0)} events/s; one run |"
            )
    return lines


def cpu_table(results: Mapping[str, Any], threshold: float = 0.03) -> list[str]:
    """Rows: phase; columns: the process groups that used a noticeable share somewhere."""
    phases: Mapping[str, Mapping[str, Any]] = results.get("cpu", {})
    if not phases:
        return []
    totals: dict[str, float] = {}
    for phase in phases.values():
        for label, share in phase["shares"].items():
            totals[label] = max(totals.get(label, 0.0), share)
    tail = ["machine busy", "not ours"]
    labels = [k for k in sorted(totals) if totals[k] >= threshold and k not in tail]
    labels += [k for k in tail if k in totals]
    lines = [
        "| phase | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name, phase in phases.items():
        shares = phase["shares"]
        lines.append(
            f"| {name} | " + " | ".join(f"{shares.get(k, 0.0) * 100:.0f}%" for k in labels) + " |"
        )
    return lines


def targets_table(results: Mapping[str, Any]) -> list[str]:
    """Each target, the measurement and how far it is."""
    lines = ["| target | required | measured | met | how far |", "|---|---|---|---|---|"]
    for t in results.get("targets", []):
        op = "≥" if t["higher_is_better"] else "≤"
        digits = 2 if t["required"] < 10 and t["required"] != 0 else 0
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(
            f"| {t['target']} | {op} {_num(t['required'], digits)} | "
            f"{_num(t['measured'], digits)} | {met} | {t['how_far']} |"
        )
    return lines


def profile_tables(results: Mapping[str, Any]) -> list[str]:
    """Where the CPU went in each profiled run: self time by library, top functions."""
    lines: list[str] = []
    for name, profile in results.get("profiles", {}).items():
        if "not_run" in profile:
            lines += [f"**{name}**: not run ({profile['not_run']})", ""]
            continue
        lines.append(f"**{name}** ({profile['samples']:,} samples of busy threads)")
        lines.append("")
        lines.append("| self time by library | share |")
        lines.append("|---|---|")
        for library, share in profile["by_library"][:10]:
            lines.append(f"| {library} | {share:.0%} |")
        lines.append("")
        lines.append("| function (self time) | share |")
        lines.append("|---|---|")
        for frame, share in profile["self"][:10]:
            lines.append(f"| `{frame}` | {share:.0%} |")
        lines.append("")
        ours = profile.get("ours_inclusive", [])
        if ours:
            lines.append("| our function (inclusive) | share |")
            lines.append("|---|---|")
            for frame, share in ours[:10]:
                lines.append(f"| `{frame}` | {share:.0%} |")
        lines.append("")
    return lines


def _markers(results: Mapping[str, Any]) -> tuple[str, str]:
    quick = results.get("meta", {}).get("mode") == "quick"
    return (QUICK_BEGIN, QUICK_END) if quick else (BEGIN, END)


def markdown_section(results: Mapping[str, Any]) -> str:
    """The generated part of BENCHMARKS.md (the full run's section, or the quick run's)."""
    meta = results["meta"]
    settings = results["settings"]
    begin, end = _markers(results)
    out = [
        begin,
        "",
        f"Run **{meta['started']}** ({meta['mode']}): `{meta['command']}`; "
        f"{meta['runs']} runs per measurement, median (min–max). "
        f"Machine: {meta['cpus']} CPUs ({meta['cpu_model']}), {meta['memory_gib']} GiB; "
        f"load average before the run {meta['load_before']}. "
        f"Results: `{meta['json']}`, chart `{meta['chart']}`.",
        "",
        f"Gunicorn (services, gateway and baseline alike): {settings['gunicorn']}. "
        f"wrk: {settings['wrk']}. nginx: {settings['nginx']}. "
        f"Argon2id: {settings['argon2']}. Versions: {settings['versions']}.",
        "",
        "### HTTP",
        "",
        *http_table(results),
        "",
        "### Targets",
        "",
        *targets_table(results),
        "",
        "### Events",
        "",
        *events_table(results),
        "",
        "### Load generator",
        "",
        *generator_table(results),
        "",
        f"### CPU share per process (100% = one core; the machine has {meta['cpus']})",
        "",
        "Gunicorn groups include their workers; postgres, rabbitmq and redis are the shared "
        "servers (other users' work included); `not ours` is what the machine did besides "
        "the processes listed.",
        "",
        *cpu_table(results),
        "",
    ]
    profiles = profile_tables(results)
    if profiles:
        out += ["### Profiles (py-spy)", "", *profiles]
    out.append(end)
    return "\n".join(out) + "\n"


DEFAULT_HEADER = """# Benchmarks

Generated by `make bench` (or `make bench-quick`); the section between the markers is
rewritten by every run.
"""


def update_markdown(path: Path, results: Mapping[str, Any]) -> None:
    """Replace the run's generated section of BENCHMARKS.md, keeping everything else."""
    begin, end = _markers(results)
    text = path.read_text() if path.exists() else DEFAULT_HEADER
    if begin not in text or end not in text:
        text = text.rstrip() + f"\n\n{begin}\n{end}\n"
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    after = after.lstrip("\n")
    path.write_text(before + markdown_section(results) + ("\n" + after if after else ""))


def write_json(path: Path, results: Mapping[str, Any]) -> None:
    """The full results, NaN written as null."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(results), indent=2, sort_keys=False) + "\n")


# -- chart ---------------------------------------------------------------------------------


def chart(path: Path, results: Mapping[str, Any]) -> None:
    """Throughput (with min-max) and p50/p99 latency per request and path, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    http = results.get("http", {})
    endpoints = [e for e in ENDPOINTS if e in http]
    paths = list(PATHS)
    colors = {"direct": "#4c72b0", "gateway": "#dd8452", "edge": "#55a868"}
    width = 0.8 / len(paths)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), constrained_layout=True)
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Re-render BENCHMARKS.md and the chart from a results JSON: `python -m bench.report F`."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m bench.report bench/results/<date>.json\n")
        return 2
    path = Path(args[0])
    results = json.loads(path.read_text(), parse_constant=float)

    def nan(value: Any) -> Any:
        if value is None:
            return float("nan")
        if isinstance(value, dict):
            return {k: nan(v) for k, v in value.items()}
        if isinstance(value, list):
            return [nan(v) for v in value]
        return value

    results = nan(results)
    root = Path(__file__).resolve().parents[1]
    chart(root / results["meta"]["chart"], results)
    update_markdown(root / "BENCHMARKS.md", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
