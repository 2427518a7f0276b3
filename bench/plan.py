"""What a benchmark run does: the plans (full, quick), the HTTP cells and the command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

# (endpoint, path) in the order they run within one round; rounds repeat `runs` times, so
# drift over time (a warming cache, a neighbour's load) spreads over every cell alike.
# POSTs come last: the events they cause are processed before the next round starts. The
# bare INSERT endpoint runs right before the suite's POSTs it is the baseline of.
CELLS: list[tuple[str, str]] = [
    ("baseline", "direct"),
    ("get_one", "direct"),
    ("get_one", "gateway"),
    ("get_one", "edge"),
    ("page", "direct"),
    ("page", "gateway"),
    ("page", "edge"),
    ("login", "direct"),
    ("login", "gateway"),
    ("baseline_post", "direct"),
    ("post", "direct"),
    ("post", "gateway"),
    ("post", "edge"),
]


@dataclass(frozen=True)
class Plan:
    """How much of everything to do."""

    mode: str
    runs: int
    seconds: float
    connections: int
    users: int
    orders_per_user: int
    relay_events: int
    consumer_events: int
    mail_count: int
    e2e_seconds: float
    sustained_rate: float
    sustained_seconds: float
    # A sustained run lasts until its backlog is notified: on a saturated machine, far longer
    # than its schedule. Quick mode does one.
    sustained_runs: int
    outage_events: int
    profile_seconds: int


PLANS = {
    "full": Plan(
        mode="full",
        runs=3,
        seconds=10,
        connections=16,
        users=8,
        orders_per_user=40,
        relay_events=20_000,
        consumer_events=3_000,
        mail_count=3_000,
        e2e_seconds=20,
        sustained_rate=300,
        sustained_seconds=60,
        sustained_runs=3,
        outage_events=10_000,
        profile_seconds=8,
    ),
    "quick": Plan(
        mode="quick",
        runs=3,
        seconds=1,
        connections=16,
        users=4,
        orders_per_user=21,
        relay_events=2_000,
        consumer_events=300,
        mail_count=300,
        e2e_seconds=1,
        sustained_rate=300,
        sustained_seconds=5,
        sustained_runs=1,
        outage_events=0,
        profile_seconds=0,
    ),
}


def parse_args(argv: Sequence[str] | None, description: str | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=description)
    parser.add_argument("--quick", action="store_true", help="the short version (< 2 minutes)")
    parser.add_argument("--runs", type=int, help="runs per measurement (median, min-max)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, help="wrk connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per service")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker")
    parser.add_argument("--no-outage", action="store_true", help="skip the broker outage phase")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument("--label", help="the command to quote in BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.label is None:
        args.label = "make bench-quick" if args.quick else "make bench"
    return args


def plan_for(args: argparse.Namespace) -> Plan:
    """The plan of the chosen mode with the command line's overrides."""
    base = PLANS["quick" if args.quick else "full"]
    overrides = {
        k: v
        for k, v in {
            "runs": args.runs,
            "seconds": args.seconds,
            "connections": args.connections,
        }.items()
        if v is not None
    }
    plan = Plan(**{**base.__dict__, **overrides})
    if plan.runs < 1:
        raise SystemExit("--runs must be at least 1")
    return plan
