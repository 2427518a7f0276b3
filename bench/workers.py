"""Sync or async web workers: the suite's threaded gunicorn worker against gevent, same load.

    python -m bench.workers [--seconds 10] [--connections 16,64] [--out bench/results]

One suite (bench/suite.py: real processes, fresh PostgreSQL databases and vhost). For each
worker class, the gateway and the orders service are restarted under it, with the same
number of processes (2), and wrk drives the same requests at each concurrency:

- `orders, direct`: GET one order at the orders service (token check, one indexed read,
  render): the service's own work, mostly CPU.
- `gateway`: the same GET through the gateway (token check, rate limit in Redis, proxy to
  orders): a hop that mostly waits on the network.

The classes: `gthread` is what the suite deploys (shared.gunicorn_worker, 4 threads per
process); `gevent` is gunicorn's green-thread worker (1000 connections per process), which
monkey-patches sockets so that a request waiting on the network yields to the others.
Prints a table and writes `workers-<time>.json` into --out.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import seeding
from bench.suite import Suite, SuiteOptions, gunicorn_argv
from bench.wrk import WrkResult, run_wrk, write_rows
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[1]
WEB = {"gateway": "gateway.wsgi:app", "orders": "services.orders.wsgi:app"}
# gunicorn's argument for each class; `gthread` is the suite's balanced gthread.
CLASSES = {"gthread": None, "gevent": "gevent"}
TARGETS = ("orders", "gateway")


def restart_web(suite: Suite, name: str, worker_class: str | None) -> None:
    """Restart one web process under the worker class (None: the suite's own)."""
    suite.stop_processes([name])
    argv = gunicorn_argv(
        WEB[name], suite.ports[name], workers=suite.options.workers, threads=suite.options.threads
    )
    if worker_class is not None:
        at = argv.index("--worker-class")
        argv[at + 1] = worker_class
        # gevent ignores --threads; its concurrency is greenlets per process.
        argv += ["--worker-connections", "1000"]
    suite.spawn(name, argv, {"SERVICE_NAME": name})
    wait_for(
        functools.partial(seeding.answers_ok, suite.url(name, "/healthz")),
        timeout=180,
        what=f"{name} healthy under {worker_class or 'gthread'}",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the comparison once; print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.connections.split(",")]
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_before": os.getloadavg(),
        "seconds": args.seconds,
        "processes_per_service": 2,
        "runs": [],
    }
    options = SuiteOptions(
        start_timeout=180.0,
        extra_env={
            "GATEWAY_RATE_LIMIT_USER": "1000000/minute",
            "GATEWAY_RATE_LIMIT_IP": "1000000/minute",
        },
    )
    with Suite(options) as suite:
        users = seeding.register_users(suite, args.users, label="workers")
        pairs = seeding.seed_orders(suite, users, per_user=5)
        data = write_rows(pairs, suite.dir, "get_one")
        token, order_id = pairs[0]
        headers = {"Authorization": f"Bearer {token}"}
        for label, worker_class in CLASSES.items():
            for name in WEB:
                restart_web(suite, name, worker_class)
            for name in TARGETS:
                for _ in range(40):  # JWKS, pools, caches in every worker
                    seeding.answers_ok(suite.url(name, f"/api/v1/orders/{order_id}"), headers)
            for connections in levels:
                for target in TARGETS:
                    suite.check_alive()
                    result: WrkResult = run_wrk(
                        suite.url(target),
                        "get_one",
                        data,
                        seconds=args.seconds,
                        connections=connections,
                    )
                    row = {
                        "worker": label,
                        "target": target,
                        "connections": connections,
                        **result.to_dict(),
                    }
                    results["runs"].append(row)
                    sys.stdout.write(_line(row) + "\n")
                    sys.stdout.flush()
                    time.sleep(1)
    results["load_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    path = args.out / f"workers-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(table(results["runs"]) + f"\nwritten to {path}\n")
    return 0


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['worker']:8} {row['target']:8} c={row['connections']:<3} "
        f"{row['rps']:8.1f} req/s  p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms"
        f"  errors {row['errors']}"
    )


def table(rows: list[dict[str, Any]]) -> str:
    """The runs as a Markdown table."""
    lines = [
        "| worker | GET one order | connections | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        where = "through the gateway" if row["target"] == "gateway" else "orders, direct"
        lines.append(
            f"| {row['worker']} | {where} | {row['connections']} | {row['rps']:.0f} "
            f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['errors']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
