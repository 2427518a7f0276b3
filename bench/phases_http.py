"""HTTP phases: every (endpoint, path) cell under wrk, and the py-spy profiles under load."""

from __future__ import annotations

import functools
import time
import uuid
from typing import TYPE_CHECKING, Any

from bench import events as ev
from bench import profile, report
from bench.plan import CELLS

if TYPE_CHECKING:
    from bench.harness import Bench


def http(bench: Bench) -> None:
    """Every (endpoint, path) cell, `runs` rounds, interleaved."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_no in range(bench.plan.runs):
        bench.log(f"HTTP round {round_no + 1}/{bench.plan.runs}")
        for endpoint, path in CELLS:
            if bench.base_for(endpoint, path) is None:
                continue
            bench.suite.check_alive()
            result = bench.measure(
                f"{report.ENDPOINTS[endpoint]} — {report.PATHS[path]}",
                functools.partial(bench.wrk, endpoint, path, seconds=bench.plan.seconds),
            )
            runs.setdefault((endpoint, path), []).append(result.to_dict())
        bench.settle()
    for (endpoint, path), items in runs.items():
        bench.results["http"].setdefault(endpoint, {})[path] = {
            "runs": items,
            "summary": report.http_cell(items),
        }
    if bench.edge is None:
        for endpoint in ("get_one", "page", "post"):
            bench.results["http"][endpoint]["edge"] = {"not_run": bench.edge_reason}


def profiles(bench: Bench) -> None:
    """py-spy on the processes that bound the measured paths, under the same load."""
    seconds = bench.plan.profile_seconds
    targets = [
        ("orders: GET one order, direct", "orders", "get_one", "direct"),
        ("gateway: GET one order, through the gateway", "gateway", "get_one", "gateway"),
        ("orders: POST an order, direct", "orders", "post", "direct"),
    ]
    _profile_consumer(bench, seconds)
    for title, process, endpoint, path in targets:
        pid = bench.suite.pids().get(process)
        if pid is None or profile.py_spy() is None:
            bench.results["profiles"][title] = {"not_run": "py-spy or the process is missing"}
            continue
        bench.log(f"profiling {title}")
        raw = bench.work / f"profile-{process}-{endpoint}.txt"
        recorder = profile.start_recording(pid, raw, seconds=seconds)
        time.sleep(0.5)  # py-spy attaches first
        bench.wrk(endpoint, path, seconds=seconds)
        _, stderr = recorder.communicate(timeout=seconds + 60)
        if recorder.returncode != 0 or not raw.exists():
            bench.results["profiles"][title] = {"not_run": stderr.decode()[-300:]}
            continue
        bench.results["profiles"][title] = profile.summarize(raw)
    bench.settle()


def _profile_consumer(bench: Bench, seconds: int) -> None:
    title = "notifications consumer: order.created events"
    pid = bench.suite.pids().get("notifications.consume")
    if pid is None or profile.py_spy() is None:
        bench.results["profiles"][title] = {"not_run": "py-spy or the process is missing"}
        return
    bench.log(f"profiling {title}")
    publisher = ev.ProducerPublishers(bench.suite.service_amqp_urls, bench.suite.amqp_url)
    try:
        # More than it can handle in the recording: it stays busy throughout.
        user_id = f"bench-profile-{uuid.uuid4().hex[:8]}"
        publisher.publish(ev.user_registered_event(user_id))
        publisher.publish(ev.user_email_verified_event(user_id))
        batch = [ev.order_created_event(user_id) for _ in range(seconds * 250)]
        raw = bench.work / "profile-consumer.txt"
        recorder = profile.start_recording(pid, raw, seconds=seconds)
        time.sleep(0.5)
        publisher.publish_batch(batch)
        _, stderr = recorder.communicate(timeout=seconds + 60)
    finally:
        publisher.close()
    if recorder.returncode != 0 or not raw.exists():
        bench.results["profiles"][title] = {"not_run": stderr.decode()[-300:]}
    else:
        bench.results["profiles"][title] = profile.summarize(raw)
    bench.settle()
