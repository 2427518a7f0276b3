"""`make bench-containers`: the same load against the bare suite and against the compose stack.

    python -m bench.containers [--seconds 10] [--connections 16] [--rounds 3]
                               [--tag compose-test] [--write-docs]

Decision 0005 deploys containers and keeps bare processes for `make run`, the tests and
the benchmarks; this measures the difference on this machine. One side after the other,
never both at once:

- bare: the suite as `make bench` runs it (bench/suite.py: gunicorn, relays, consumers on
  fresh databases and a vhost of the machine's PostgreSQL and RabbitMQ) behind the nginx
  edge (bench/edge.py);
- containers: the compose stack of the images `make compose-test` built
  (tests/compose/stack.py: its own PostgreSQLs, RabbitMQ, Redis, mail catcher and edge),
  with the benchmark's rate limits and token lifetime merged over docker-compose.yml.

Each side is seeded the same way through its edge (make bench's users, registered and
verified with the mailed link, and their orders), then wrk drives the same requests at its
edge (GET one order, a page of 20, login, POST an order) with the same connections, one
thread, `--seconds` per run, `--rounds` times. Recorded per side: every run, the start-up
time until the edge is ready and the memory after seeding and after the load. Prints a
row per run, writes bench/results/containers-<time>.json and, with `--write-docs`, the
Evidence section of docs/decisions/0005-containers-over-bare-processes.md
(bench/containers_report.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from bench import containers_report as record
from bench import report
from bench.containers_sides import BENCH_ENV, BareSide, ComposeSide, Side
from bench.events import ORDER_BODY
from bench.plan import PLANS
from bench.record import cpu_model
from bench.seeding import User, answers_ok, http_session
from bench.wrk import run_wrk, write_rows
from tests.compose.stack import ROOT, missing_images, missing_images_message

THREADS = 1
# argon2id at OWASP's parameters on two shared cores: a login can take seconds.
HTTP_TIMEOUT = 60


# -- seeding, the same on both sides -------------------------------------------------------


@dataclass
class Seeded:
    """The users a side was seeded with and their orders, as (token, order id)."""

    users: list[User]
    orders: list[tuple[str, str]]


def _expect(response: requests.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{what} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def seed(
    api: str, links: Callable[[Sequence[str]], dict[str, str]], *, users: int, per_user: int
) -> Seeded:
    """Register `users` users at `api`, verify them with the mailed links, log them in and
    place `per_user` orders each, all through the same API a client uses."""
    accounts = [
        (f"containers-{n}-{uuid.uuid4().hex[:8]}@bench.example.com", f"bench-{uuid.uuid4().hex}")
        for n in range(users)
    ]
    mailed: dict[str, str] = {}

    def register(n: int) -> None:
        email, password = accounts[n]
        body = {"email": email, "password": password, "name": f"Bench User {n}"}
        _expect(
            http_session().post(f"{api}/auth/register", json=body, timeout=HTTP_TIMEOUT),
            202,
            "register",
        )

    def verify_and_login(n: int) -> User:
        email, password = accounts[n]
        token = parse_qs(urlsplit(mailed[email]).query)["token"][0]
        http = http_session()
        verified = _expect(
            http.post(f"{api}/auth/verify-email", json={"token": token}, timeout=HTTP_TIMEOUT),
            200,
            "verify-email",
        )
        login = _expect(
            http.post(
                f"{api}/auth/login",
                json={"email": email, "password": password},
                timeout=HTTP_TIMEOUT,
            ),
            200,
            "login",
        )
        return User(verified["id"], email, password, login["access_token"])

    def place(user: User) -> tuple[str, str]:
        placed = _expect(
            http_session().post(
                f"{api}/orders",
                json=ORDER_BODY,
                headers={"Authorization": f"Bearer {user.token}"},
                timeout=HTTP_TIMEOUT,
            ),
            201,
            "placing an order",
        )
        return user.token, str(placed["id"])

    with ThreadPoolExecutor(max_workers=4) as executor:
        list(executor.map(register, range(users)))
        mailed.update(links([email for email, _ in accounts]))
        seeded = list(executor.map(verify_and_login, range(users)))
    with ThreadPoolExecutor(max_workers=8) as executor:
        orders = list(executor.map(place, [u for u in seeded for _ in range(per_user)]))
    return Seeded(seeded, orders)


def warm_up(edge: str, seeded: Seeded) -> None:
    """A few requests per path so every worker has its JWKS, pools and caches (as make bench)."""
    token, order_id = seeded.orders[0]
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(40):
        answers_ok(f"{edge}/api/v1/orders/{order_id}", headers)
        answers_ok(f"{edge}/api/v1/orders?limit=20", headers)


# -- the run -------------------------------------------------------------------------------


@contextmanager
def heartbeat(log: Callable[[str], None], what: str, every: float = 30.0) -> Iterator[None]:
    """Log `what` every `every` seconds while the block runs (long silent steps)."""
    done = threading.Event()
    began = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            log(f"{what}: {time.monotonic() - began:.0f} s so far")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class Run:
    """One run: each side in turn, the results, the record."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = datetime.now(UTC)
        self.work = Path(tempfile.mkdtemp(prefix="bench-containers-"))
        self.path = record.results_path(self.started)
        self.side: Side | None = None
        plan = PLANS["full"]
        self.results: dict[str, Any] = {
            "meta": {
                "started": self.started.strftime("%Y-%m-%d %H:%M UTC"),
                "command": "python -m bench.containers " + " ".join(args.argv),
                "cpus": os.cpu_count(),
                "cpu_model": cpu_model(),
                "load_before": _load(),
                "seconds": args.seconds,
                "connections": args.connections,
                "threads": THREADS,
                "rounds": args.rounds,
                "tag": args.tag,
                # make bench's seeding shape.
                "users": plan.users,
                "orders_per_user": plan.orders_per_user,
                "env": BENCH_ENV,
            },
            "sides": {},
        }

    def log(self, message: str) -> None:
        """Progress on stderr, with the elapsed time."""
        elapsed = (datetime.now(UTC) - self.started).total_seconds()
        sys.stderr.write(f"[containers {elapsed:7.1f}s] {message}\n")
        sys.stderr.flush()

    def run(self) -> Path:
        """Bare first, then containers; the results file."""
        makers: list[Callable[[], Side]] = [
            lambda: BareSide(self.work, self.log),
            lambda: ComposeSide(self.work, self.log, self.args.tag),
        ]
        _print("side        request                   run     req/s    p50 ms    p99 ms  errors")
        for make in makers:
            self.side = make()
            try:
                self.results["sides"][self.side.name] = self.measure(self.side)
            finally:
                self.log(f"{self.side.name}: stopping")
                self.side.stop()
                self.side = None
            record.save(self.path, self.results)
        self.results["meta"]["load_after"] = _load()
        self.results["ratios"] = record.ratios(self.results)
        record.save(self.path, self.results)
        _print("")
        for line in [*record.request_table(self.results), "", *record.cost_table(self.results)]:
            _print(line)
        if self.args.write_docs:
            record.write_docs(self.results, self.path)
            self.log(f"wrote the Evidence section of {record.DECISION.relative_to(ROOT)}")
        return self.path

    def measure(self, side: Side) -> dict[str, Any]:
        """Start, seed, settle, warm up, weigh, then every request `rounds` times."""
        meta = self.results["meta"]
        self.log(f"{side.name}: starting")
        with heartbeat(self.log, f"{side.name}: still starting"):
            start_seconds = side.start()
        self.log(f"{side.name}: edge ready at {side.edge} after {start_seconds:.0f} s")
        self.log(
            f"{side.name}: seeding {meta['users']} users, {meta['orders_per_user']} orders each"
        )
        began = time.monotonic()
        with heartbeat(self.log, f"{side.name}: still seeding"):
            seeded = seed(
                f"{side.edge}/api/v1",
                side.links,
                users=meta["users"],
                per_user=meta["orders_per_user"],
            )
        seed_seconds = time.monotonic() - began
        self.log(f"{side.name}: seeded in {seed_seconds:.0f} s")
        files = self.data_files(side, seeded)
        self.settle(side)
        warm_up(side.edge, seeded)
        for mode in ("get_one", "page"):
            run_wrk(side.edge, mode, files[mode], seconds=2, connections=self.args.connections)
        self.settle(side)
        idle = side.memory()
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in record.MODES}
        for round_no in range(self.args.rounds):
            self.log(f"{side.name}: round {round_no + 1}/{self.args.rounds}")
            for mode, title in record.MODES.items():
                side.check_alive()
                result = run_wrk(
                    side.edge,
                    mode,
                    files[mode],
                    seconds=self.args.seconds,
                    connections=self.args.connections,
                    threads=THREADS,
                )
                runs[mode].append(result.to_dict())
                _print(
                    f"{side.name:<11} {title:<25} {round_no + 1}/{self.args.rounds} "
                    f"{result.rps:9.1f} {result.p50_ms:9.1f} {result.p99_ms:9.1f} "
                    f"{result.errors:7d}"
                )
            self.settle(side)
        return {
            "start_seconds": round(start_seconds, 1),
            "seed_seconds": round(seed_seconds, 1),
            "memory": {"idle": idle, "loaded": side.memory()},
            "requests": {
                mode: {"runs": items, "summary": report.http_cell(items)}
                for mode, items in runs.items()
            },
        }

    def settle(self, side: Side) -> None:
        """Wait for the event pipeline, with a heartbeat."""
        with heartbeat(self.log, f"{side.name}: waiting for the event pipeline"):
            side.settle()

    def data_files(self, side: Side, seeded: Seeded) -> dict[str, Path]:
        """wrk's data files of every mode."""
        directory = side.work / "data"
        directory.mkdir(exist_ok=True)
        tokens = [(user.token,) for user in seeded.users]
        return {
            "get_one": write_rows(seeded.orders, directory, "get_one"),
            "page": write_rows(tokens, directory, "page"),
            "post": write_rows(tokens, directory, "post"),
            "login": write_rows([(u.email, u.password) for u in seeded.users], directory, "login"),
        }

    def close(self) -> None:
        """Stop a side still running and remove the working directory."""
        if self.side is not None:
            self.side.stop()
            self.side = None
        shutil.rmtree(self.work, ignore_errors=True)


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.containers", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every request per side")
    parser.add_argument(
        "--tag", default="compose-test", help="the images' tag (make compose-test's)"
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite the Evidence section of decision 0005 (docs/decisions/)",
    )
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    for name in ("seconds", "connections", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    args.argv = given
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Check the images, run both sides, write the results."""
    args = parse_args(argv)
    missing = missing_images(args.tag)
    if missing:
        sys.stderr.write(f"error: {missing_images_message(missing)}\n")
        return 2
    # SIGTERM stops whichever side is running and removes it, as an interrupt does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run(args)
    try:
        path = run.run()
    finally:
        run.close()
    run.log(f"done: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
