"""The containers run's record: bench/results/containers-<date>.json and decision 0005's Evidence.

    python -m bench.containers_report bench/results/containers-<date>.json   (rewrite the section)

Everything here is a pure function of the results bench/containers.py collects, except
`save` and `write_docs`, which write them.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DECISION = ROOT / "docs" / "decisions" / "0005-containers-over-bare-processes.md"
HEADING = "## Evidence"
COMMAND = "make compose-test && make bench-containers CONTAINERS_ARGS=--write-docs"
# wrk's Lua modes in the order they run within a round (POST last: its events are handled
# before the next round starts), with their titles.
MODES = {
    "get_one": "GET one order",
    "page": "GET a page of 20 orders",
    "login": "POST login (argon2id)",
    "post": "POST an order",
}
SIDES = {"bare": "bare processes", "containers": "containers"}
# Compose services that hold state; the bare suite uses the machine's shared servers instead.
STATE_SERVICES = frozenset({"auth-db", "orders-db", "notifications-db", "rabbitmq", "redis"})
MIB = 2**20


def results_path(started: datetime) -> Path:
    """Where a run that started at `started` (UTC) writes its results."""
    return RESULTS / f"containers-{started.strftime('%Y-%m-%dT%H%M%SZ')}.json"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator to two places; None when either is missing or not positive."""
    if numerator is None or denominator is None:
        return None
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return None
    return round(numerator / denominator, 2)


def memory_groups(side: str, memory: Mapping[str, int]) -> tuple[int, int | None]:
    """(the suite's own processes, the state services) in bytes, from one memory sample.

    Bare: every process is the suite's (nginx included); its PostgreSQL, RabbitMQ and Redis
    are the machine's shared servers, not counted (None). Containers: the state services'
    containers apart from the rest (the suite's, the edge and the mail catcher).
    """
    if side == "bare":
        return sum(memory.values()), None
    suite = sum(v for name, v in memory.items() if name not in STATE_SERVICES)
    return suite, sum(v for name, v in memory.items() if name in STATE_SERVICES)


def ratios(results: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """containers / bare of every request's medians, of start-up and of memory after the load."""
    bare, containers = results["sides"]["bare"], results["sides"]["containers"]
    out: dict[str, dict[str, float | None]] = {}
    for mode in MODES:
        b, c = bare["requests"][mode]["summary"], containers["requests"][mode]["summary"]
        out[mode] = {
            metric: ratio(c[metric]["median"], b[metric]["median"])
            for metric in ("rps", "p50_ms", "p99_ms")
        }
    out["start"] = {"seconds": ratio(containers["start_seconds"], bare["start_seconds"])}
    out["memory"] = {
        "suite_bytes": ratio(
            memory_groups("containers", containers["memory"]["loaded"])[0],
            memory_groups("bare", bare["memory"]["loaded"])[0],
        )
    }
    return out


# -- Markdown ------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _spread(summary: Mapping[str, float], digits: int = 0) -> str:
    if not summary.get("n"):
        return "n/a"
    median, low, high = summary["median"], summary["min"], summary["max"]
    if _num(low, digits) == _num(high, digits):
        return _num(median, digits)
    return f"{_num(median, digits)} ({_num(low, digits)}–{_num(high, digits)})"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def request_table(results: Mapping[str, Any]) -> list[str]:
    """Per request: each side's throughput, latency and errors, and containers / bare."""
    got = ratios(results)
    lines = [
        "| request | run on | requests/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mode, title in MODES.items():
        for side, label in SIDES.items():
            s = results["sides"][side]["requests"][mode]["summary"]
            lines.append(
                f"|{f' {title} ' if side == 'bare' else ' '}| {label} | {_spread(s['rps'])} | "
                f"{_spread(s['p50_ms'], 1)} | {_spread(s['p99_ms'], 1)} | {s['errors']:,} |"
            )
        r = got[mode]
        lines.append(
            f"| | containers / bare | {_times(r['rps'])} | {_times(r['p50_ms'])} | "
            f"{_times(r['p99_ms'])} | |"
        )
    return lines


def cost_table(results: Mapping[str, Any]) -> list[str]:
    """Start-up and resident memory of each side, and containers / bare."""
    bare, containers = results["sides"]["bare"], results["sides"]["containers"]
    got = ratios(results)
    b_idle, _ = memory_groups("bare", bare["memory"]["idle"])
    c_idle, c_state_idle = memory_groups("containers", containers["memory"]["idle"])
    b_load, _ = memory_groups("bare", bare["memory"]["loaded"])
    c_load, c_state_load = memory_groups("containers", containers["memory"]["loaded"])
    return [
        "| | bare processes | containers | containers / bare |",
        "|---|---:|---:|---:|",
        f"| start-up until the edge is ready, s | {_num(bare['start_seconds'])} | "
        f"{_num(containers['start_seconds'])} | {_times(got['start']['seconds'])} |",
        f"| memory of the suite's processes, MiB, after seeding | {_num(b_idle / MIB)} | "
        f"{_num(c_idle / MIB)} | {_times(ratio(c_idle, b_idle))} |",
        f"| memory of the suite's processes, MiB, after the load | {_num(b_load / MIB)} | "
        f"{_num(c_load / MIB)} | {_times(got['memory']['suite_bytes'])} |",
        "| memory of PostgreSQL, RabbitMQ, Redis, MiB, after seeding / the load | "
        "not counted (the machine's shared servers) | "
        f"{_num((c_state_idle or 0) / MIB)} / {_num((c_state_load or 0) / MIB)} | |",
    ]


def evidence_section(results: Mapping[str, Any], path: Path) -> str:
    """The decision record's Evidence section (heading included) for a run's results."""
    meta = results["meta"]
    try:
        shown = path.relative_to(ROOT)
    except ValueError:
        shown = path
    orders = meta["users"] * meta["orders_per_user"]
    intro = (
        f"Measured **{meta['started']}** with `{COMMAND}` on {meta['cpu_model']}, "
        f"{meta['cpus']} cores shared with other work (load average before the run "
        f"{meta['load_before']}). One side after the other, never both at once, each seeded "
        f"the same way through its own nginx edge ({meta['users']} users verified with the "
        f"mailed link, {orders:,} orders), then the same wrk load at that edge: "
        f"`-t{meta['threads']} -c{meta['connections']} -d{meta['seconds']:g}s`, "
        f"bench/lua/api.lua, {meta['rounds']} runs per request, median (min–max). "
        f"Results: `{shown}`."
    )
    lines = [
        HEADING,
        "",
        textwrap.fill(intro, width=90, break_long_words=False, break_on_hyphens=False),
        "",
        *request_table(results),
        "",
        *cost_table(results),
        "",
        "How to read it:",
        "",
        "- Above 1× is more for containers: more requests per second (better), or a longer",
        "  latency, start-up or more memory (worse). Errors are non-2xx answers and socket",
        "  errors over all runs.",
        "- Start-up: bare, fresh databases and a vhost on servers already running, the",
        "  migrations, every process healthy and nginx listening (`bench/suite.py`);",
        "  containers, `up` from empty volumes until the edge's `/readyz` answers: three",
        "  PostgreSQL clusters initialised, RabbitMQ booted, the migrations, the healthchecks.",
        "- Memory: bare, the resident set of every process of the suite with its children,",
        "  nginx and the SMTP sink included (a page forked workers share counts in each of",
        "  them); containers, each container's memory as `docker stats` reports it (the",
        "  cgroup's usage less its inactive file cache), the mail catcher and the edge in the",
        "  suite's share.",
        "- Besides the packaging: the bare suite runs as `make bench` runs it (APP_ENV=test,",
        "  every web process 2 workers × 4 threads, one nginx worker, the machine's",
        "  PostgreSQL, RabbitMQ and Redis); the containers as deployed (APP_ENV=production,",
        "  the gateway with 8 threads per worker, an nginx worker per core, the local",
        "  stand-in images of `docker/local/`, requests through Docker's published port).",
        "  Both with the benchmark's rate limits and token lifetime",
        "  (`bench/containers_sides.py`).",
        "",
        "`make compose-test` also drives the README walk-through through the stack's edge",
        '(`tests/compose/`), about 9 minutes from nothing cached (README, "Operate").',
    ]
    return "\n".join(lines) + "\n"


def replace_section(text: str, heading: str, section: str) -> str:
    """`text` with the section under `heading` (up to the next `## ` heading) replaced.

    `section` starts with the heading itself; ValueError when `text` has no such heading.
    """
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == heading)
    except StopIteration:
        raise ValueError(f"no {heading!r} section") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    body = section if section.endswith("\n") else section + "\n"
    rest = "".join(lines[end:])
    return "".join(lines[:start]) + body + ("\n" + rest if rest else "")


# -- files ---------------------------------------------------------------------------------


def save(path: Path, results: Mapping[str, Any]) -> Path:
    """Write the results as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return path


def write_docs(results: Mapping[str, Any], path: Path, record: Path = DECISION) -> None:
    """Replace the decision record's Evidence section with this run's."""
    record.write_text(replace_section(record.read_text(), HEADING, evidence_section(results, path)))


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the Evidence section from a results file."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit(
            "usage: python -m bench.containers_report bench/results/containers-<date>.json"
        )
    path = Path(args[0]).resolve()
    write_docs(json.loads(path.read_text()), path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
