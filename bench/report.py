"""Results of a benchmark run: summaries and the Markdown section (targets: bench/targets.py,
chart: bench/chart.py)."""

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
    "baseline_post": "bare Flask + psycopg, INSERT one row (commit)",
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
    baseline = events.get("consumer_baseline")
    if consumer:
        beside = (
            f"; plain pika consumer in the same run {_spread(baseline['summary'])} events/s, "
            f"suite / baseline {_num(_ratio(consumer, baseline), 2)}"
            if baseline
            else ""
        )
        lines.append(
            f"| notifications consumer, events/s | {_spread(consumer['summary'])} | "
            f"{consumer['events']:,} order.created per run, prefetch 300, batches of up to 100,"
            " one consumer process"
            f"{beside} |"
        )
    if baseline:
        lines.append(
            f"| plain pika consumer (baseline), events/s | {_spread(baseline['summary'])} | "
            f"{baseline['events']:,} order.created per run, prefetch 20, a quorum queue; "
            "one INSERT and commit per message before its ack |"
        )
    mail = events.get("mail")
    if mail:
        lines.append(
            f"| mails to the SMTP sink, one delivery process, mails/s | "
            f"{_spread(mail['summary'])} | {mail['mails']:,} emails pending, then the delivery "
            f"process started: first sent after {_spread(mail['first_seconds'], 1)} s "
            f"(start-up, left out of the rate), all sent after {_spread(mail['seconds'], 1)} s; "
            f"{len(mail['runs'])} runs |"
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
    sustained = events.get("sustained")
    if sustained and sustained.get("runs"):
        s = sustained["summary"]
        lines.append(
            f"| sustained {sustained['rate']:.0f} orders/s for {sustained['seconds']:.0f} s "
            f"through the gateway, notified per s | {_spread(s['rate'])} | mean over the "
            f"schedule's seconds but the first and last; POST sent → notification row p50 / "
            f"p99 {_spread(s['from_send_p50_ms'], 1)} / {_spread(s['from_send_p99_ms'], 1)} ms; "
            f"{sustained['orders']:,} orders per run, max send lateness "
            f"{_num(s['max_lateness_ms']['max'], 1)} ms, "
            f"{sum(r['errors'] for r in sustained['runs'])} errors, "
            f"{sum(r['missing'] for r in sustained['runs'])} lost |"
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
    """Each target, the measurement, how far it is, and its baseline in the same run."""
    lines = [
        "| target | required | measured | met | how far | baseline in the same run |",
        "|---|---|---|---|---|---|",
    ]
    for t in results.get("targets", []):
        op = "≥" if t["higher_is_better"] else "≤"
        digits = 2 if t["required"] < 10 and t["required"] != 0 else 0
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        base = t.get("baseline")
        beside = (
            f"{base['label']}: {_num(base['measured'])} {base['unit']}; "
            f"suite / baseline **{_num(base['ratio'], 2)}**"
            if base
            else "—"
        )
        lines.append(
            f"| {t['target']} | {op} {_num(t['required'], digits)} | "
            f"{_num(t['measured'], digits)} | {met} | {t['how_far']} | {beside} |"
        )
    return lines


def _ratio(suite: Mapping[str, Any], baseline: Mapping[str, Any]) -> float:
    a, b = suite["summary"]["median"], baseline["summary"]["median"]
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


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
    from bench.chart import chart

    root = Path(__file__).resolve().parents[1]
    chart(root / results["meta"]["chart"], results)
    update_markdown(root / "BENCHMARKS.md", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
