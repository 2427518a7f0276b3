"""One benchmark run's state: the suite, the baselines, the edge, CPU phases and results."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import seeding
from bench.cpu import CpuMeter, PhaseCpu
from bench.edge import Edge, EdgeUnavailable
from bench.plan import CELLS, Plan
from bench.seeding import BASELINE_ROWS, BaselineConsumer, User, answers_ok
from bench.suite import Suite, SuiteOptions
from bench.wrk import WrkResult, run_wrk, write_rows
from tests import support

# wrk's Lua mode per endpoint, where it is not the endpoint's own name.
WRK_MODES = {"baseline": "item", "baseline_post": "insert"}


class Bench:
    """One benchmark run: owns the suite, the baseline, the edge and the results."""

    def __init__(self, plan: Plan, args: argparse.Namespace) -> None:
        self.plan = plan
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="bench-"))
        self.suite = Suite(
            SuiteOptions(
                workers=args.workers,
                threads=args.threads,
                base_dir=self.work / "suite",
                extra_env={
                    # Tokens must outlive the run (15 minutes by default).
                    "AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200",
                    # The limits are measured (each request still counts in Redis) but must
                    # not refuse the benchmark's own load.
                    "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
                    "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
                },
            )
        )
        self.edge: Edge | None = None
        self.edge_reason = ""
        self.baseline_db: str | None = None
        self.baseline_consumer: BaselineConsumer | None = None
        self.bases: dict[str, str] = {}
        self.data: dict[str, Path] = {}
        self.users: list[User] = []
        self.meter = CpuMeter(self._roots)
        self.extra_roots: dict[str, list[int]] = {}
        self.cpu: dict[str, list[PhaseCpu]] = {}
        self.started = datetime.now(UTC)
        self.results: dict[str, Any] = {"http": {}, "events": {}, "profiles": {}}

    def settle(self) -> None:
        """Let the event pipeline finish what earlier measurements started."""
        seeding.settle(self.suite, deliveries=self.plan.mode == "full")

    def _roots(self) -> dict[str, list[int]]:
        roots = {name: [pid] for name, pid in self.suite.pids().items()}
        if self.edge is not None and self.edge.process is not None:
            roots["nginx"] = [self.edge.process.pid]
        for name, pids in self.extra_roots.items():
            roots[name] = pids
        return roots

    def log(self, message: str) -> None:
        """Progress on stderr, with the elapsed time."""
        elapsed = (datetime.now(UTC) - self.started).total_seconds()
        sys.stderr.write(f"[bench {elapsed:6.1f}s] {message}\n")
        sys.stderr.flush()

    # -- set-up ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Start everything and seed the data."""
        self.log("starting the suite (fresh databases and vhost)")
        self.suite.start()
        self.baseline_db = support.create_database("bench_baseline")
        self.bases = {
            "baseline": seeding.start_baseline(self.suite, self.baseline_db),
            "orders": self.suite.url("orders"),
            "auth": self.suite.url("auth"),
            "gateway": self.suite.url("gateway"),
        }
        try:
            self.edge = Edge.for_suite(self.suite, self.work / "nginx")
            self.edge.start()
            self.bases["edge"] = self.edge.url
        except EdgeUnavailable as exc:
            self.edge = None
            self.edge_reason = str(exc)
            self.log(f"nginx edge not run: {exc}")
        self.log(f"seeding {self.plan.users} users and {self.plan.orders_per_user} orders each")
        self.baseline_consumer = seeding.start_baseline_consumer(self.suite, self.baseline_db)
        self.users = seeding.register_users(self.suite, self.plan.users)
        pairs = seeding.seed_orders(self.suite, self.users, self.plan.orders_per_user)
        data_dir = self.work / "data"
        data_dir.mkdir()
        ids = list(range(1, BASELINE_ROWS + 1))
        # A fixed stride visits every row, scattered, the same way in every run.
        ids = [ids[(k * 7919) % len(ids)] for k in range(len(ids))]
        self.data = {
            "get_one": write_rows(pairs, data_dir, "get_one"),
            "page": write_rows([(u.token,) for u in self.users], data_dir, "page"),
            "post": write_rows([(u.token,) for u in self.users], data_dir, "post"),
            "login": write_rows([(u.email, u.password) for u in self.users], data_dir, "login"),
            "baseline": write_rows([(str(i),) for i in ids], data_dir, "baseline"),
            "baseline_post": write_rows([("order",)], data_dir, "baseline_post"),
        }
        self.warm_up(pairs)
        self.settle()

    def warm_up(self, pairs: Sequence[tuple[str, str]]) -> None:
        """A few requests per path so every worker has its JWKS, pools and caches."""
        token, order_id = pairs[0]
        headers = {"Authorization": f"Bearer {token}"}
        for base in ("orders", "gateway", "edge"):
            if base not in self.bases:
                continue
            for _ in range(40):
                answers_ok(f"{self.bases[base]}/api/v1/orders/{order_id}", headers)
                answers_ok(f"{self.bases[base]}/api/v1/orders?limit=20", headers)
        for _ in range(40):
            answers_ok(f"{self.bases['baseline']}/items/1")
        if self.plan.mode == "full":
            for endpoint, path in CELLS:
                if endpoint not in ("login", "post", "baseline_post") and self.base_for(
                    endpoint, path
                ):
                    self.wrk(endpoint, path, seconds=2)

    def base_for(self, endpoint: str, path: str) -> str | None:
        """The base URL an (endpoint, path) cell is measured on; None when not run."""
        if path == "direct":
            owner = {"baseline": "baseline", "baseline_post": "baseline", "login": "auth"}
            return self.bases[owner.get(endpoint, "orders")]
        return self.bases.get(path)

    def wrk(self, endpoint: str, path: str, *, seconds: float) -> WrkResult:
        """One wrk run of a cell."""
        base = self.base_for(endpoint, path)
        assert base is not None
        mode = WRK_MODES.get(endpoint, endpoint)
        return run_wrk(
            base,
            mode,
            self.data[endpoint],
            seconds=seconds,
            connections=self.plan.connections,
        )

    def measure(
        self, name: str, action: Callable[[], Any], extra: dict[str, float] | None = None
    ) -> Any:
        """Run action() as a CPU phase named `name` (repeated names are averaged)."""
        start = self.meter.snapshot()
        value = action()
        added = dict(extra or {})
        if isinstance(value, WrkResult):
            added["wrk"] = value.generator_cpu_seconds
        self.cpu.setdefault(name, []).append(
            self.meter.between(name, start, self.meter.snapshot(), added)
        )
        return value

    def close(self) -> None:
        """Stop everything this run started and drop what it created."""
        if self.edge is not None:
            self.edge.stop()
        self.suite.stop()
        if self.baseline_consumer is not None:
            support.delete_vhost(self.baseline_consumer.vhost)
        if self.baseline_db:
            support.drop_database(self.baseline_db)
        shutil.rmtree(self.work, ignore_errors=True)
