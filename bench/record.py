"""A run's record: the machine, settings and versions; the JSON, chart and BENCHMARKS.md."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pika
import psutil
import psycopg

from bench import chart, report, targets
from bench import events as ev
from bench.cpu import PhaseCpu
from bench.suite import Suite
from bench.wrk import WrkError, wrk_path
from shared.gunicorn_worker import WORKER_CLASS

if TYPE_CHECKING:
    from bench.harness import Bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MARKDOWN = ROOT / "BENCHMARKS.md"


def describe(bench: Bench) -> None:
    """The machine, the settings and the versions, for the record."""
    plan = bench.plan
    bench.results["meta"] = {
        "started": bench.started.strftime("%Y-%m-%d %H:%M UTC"),
        "mode": plan.mode,
        "command": bench.args.label,
        "runs": plan.runs,
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "platform": platform.platform(),
    }
    bench.results["settings"] = {
        "gunicorn": (
            f"`-c python:shared.gunicorn_conf -w {bench.args.workers} -k {WORKER_CLASS} "
            f"--threads {bench.args.threads}` (keep-alive 75 s, JSON access line per request "
            "from the app at INFO)"
        ),
        "wrk": (
            f"`-t1 -c{plan.connections} -d{max(1, round(plan.seconds))}s`, Lua script "
            "bench/lua/api.lua (closed loop: latency includes queueing at saturation)"
        ),
        "nginx": "1 worker, the gateway's template rendered as is (access log buffered)",
        "argon2": _argon2_params(),
        "versions": _versions(bench.suite),
        "plan": plan.__dict__,
    }


def finish(bench: Bench) -> tuple[Path, Path]:
    """Write the JSON, the chart and BENCHMARKS.md; their paths."""
    stamp = bench.started.strftime("%Y-%m-%dT%H%M%SZ")
    suffix = "" if bench.plan.mode == "full" else f"-{bench.plan.mode}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / f"{stamp}{suffix}.json"
    chart_path = RESULTS / f"{stamp}{suffix}.png"
    bench.results["cpu"] = {name: _average(phases) for name, phases in bench.cpu.items()}
    bench.results["meta"] = {
        **bench.results.get("meta", {}),
        "json": str(json_path.relative_to(ROOT)),
        "chart": str(chart_path.relative_to(ROOT)),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    bench.results["targets"] = targets.targets(bench.results)
    report.write_json(json_path, bench.results)
    chart.chart(chart_path, bench.results)
    report.update_markdown(MARKDOWN, bench.results)
    return json_path, chart_path


def _average(phases: Sequence[PhaseCpu]) -> dict[str, Any]:
    seconds = sum(p.seconds for p in phases)
    labels = {label for p in phases for label in p.shares}
    return {
        "seconds": round(seconds, 2),
        "shares": {
            label: round(sum(p.shares.get(label, 0.0) * p.seconds for p in phases) / seconds, 3)
            for label in sorted(labels)
        },
    }


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), for the record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _argon2_params() -> str:
    from services.auth.config import OWASP_MIN_MEMORY_KIB, OWASP_MIN_TIME_COST

    return (
        f"production defaults, memory {OWASP_MIN_MEMORY_KIB} KiB, time cost "
        f"{OWASP_MIN_TIME_COST}, parallelism 1 (AUTH_ARGON2_* unset)"
    )


def _versions(suite: Suite) -> str:
    import gunicorn
    import sqlalchemy

    parts = [
        f"Python {platform.python_version()}",
        f"Flask {importlib.metadata.version('flask')}",
        f"gunicorn {gunicorn.__version__}",
        f"SQLAlchemy {sqlalchemy.__version__}",
    ]
    try:
        with psycopg.connect(ev.libpq_url(suite.database_urls["orders"])) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            parts.append(f"PostgreSQL {row[0] if row else '?'}")
    except psycopg.Error:
        pass
    try:
        with pika.BlockingConnection(pika.URLParameters(suite.amqp_url)) as connection:
            props = connection._impl.server_properties
            version = props.get("version", b"?")
            parts.append(f"RabbitMQ {version.decode() if isinstance(version, bytes) else version}")
    except pika.exceptions.AMQPError:
        pass
    for argv, name in (([wrk_path(), "-v"], "wrk"), (["nginx", "-v"], "nginx")):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = (out.stdout + out.stderr).strip().splitlines()
            if text:
                parts.append(text[0].replace("nginx version: ", "").split(" [")[0])
        except (OSError, WrkError, subprocess.SubprocessError):
            parts.append(f"{name} ?")
    return ", ".join(parts)
