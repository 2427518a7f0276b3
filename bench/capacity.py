"""The capacity model: cores and replicas per kind of process for a rate of orders.

    python -m bench.capacity            (rewrites the generated section of docs/capacity.md)

Every input is a figure of a committed benchmark run, read from its JSON:

- `make bench` (`FULL_RUN`): CPU seconds per process during each phase (bench/cpu.py) and
  the requests wrk completed in it. The order path's figures come from the phase
  "POST an order — gateway", in which orders flowed through the whole pipeline at a steady
  rate (POST through the gateway, relay, consumer, delivery), less each background
  process's idle CPU (its share in "GET one order — direct", where no event flowed); the
  reads' from "GET one order — gateway" and "GET a page of 20 orders — gateway"; logins'
  from "POST login (argon2id) — direct".
- `make bench-scale` (`SCALE_RUN`), at its largest size: the notifications service's CPU per
  page of notifications (the full bench does not measure that request).

CPU milliseconds per order of a kind of process are its cores per 1,000 orders/s. Replicas
for a rate are the cores over what one pod may use before its autoscaler adds another
(its CPU request times the HPA's target utilisation), and never fewer than the minimum the
manifests keep for availability. bench/tests/test_capacity.py checks that deploy/k8s
follows `KINDS` and that docs/capacity.md shows what this module computes.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FULL_RUN = "bench/results/2026-12-03T141329Z.json"
SCALE_RUN = "bench/results/scale-2026-12-02T195410Z.json"
MARKDOWN = ROOT / "docs" / "capacity.md"
BEGIN = "<!-- capacity:begin (written by `python -m bench.capacity`; edit outside) -->"
END = "<!-- capacity:end -->"
RATES = (1_000, 10_000)

# What one order brings with it besides its POST: reads and logins per order placed. An
# assumption (the suite cannot know its users' habits); change it to your traffic's mix.
MIX: dict[str, float] = {"get_one": 4.0, "page": 4.0, "notifications": 2.0, "login": 0.05}

POST_PHASE = "POST an order — gateway"
IDLE_PHASE = "GET one order — direct"
READ_PHASES = {"get_one": "GET one order — gateway", "page": "GET a page of 20 orders — gateway"}
LOGIN_PHASE = "POST login (argon2id) — direct"


@dataclass(frozen=True)
class Kind:
    """A kind of pod: its Deployment, the CPU it requests, its HPA's target and minimum."""

    deployment: str
    cpu_request_m: int  # millicores
    hpa_target: int  # averageUtilization, percent of the request
    min_replicas: int


# Web pods run gunicorn with 2 workers (WEB_CONCURRENCY): up to 2 cores, 1 requested.
# Workers are one process each (one core at most under the GIL): half a core requested.
KINDS: dict[str, Kind] = {
    "gateway": Kind("gateway", 1000, 60, 2),
    "orders": Kind("orders", 1000, 60, 2),
    "notifications": Kind("notifications", 1000, 60, 2),
    "auth": Kind("auth", 1000, 60, 2),
    "orders.relay": Kind("orders-relay", 500, 60, 2),
    "notifications.consume": Kind("notifications-consumer", 500, 60, 2),
    "notifications.deliver": Kind("notifications-delivery", 500, 60, 2),
}
# Work per order outside the suite's pods: the model reports it, no manifest follows it.
SERVERS = ("postgres", "rabbitmq", "redis")


def load(path: str) -> dict[str, Any]:
    """A committed results file."""
    return dict(json.loads((ROOT / path).read_text()))


def _requests(full: Mapping[str, Any], endpoint: str, path: str) -> int:
    return int(full["http"][endpoint][path]["summary"]["requests"])


def _ms(full: Mapping[str, Any], phase: str, label: str, count: int, idle: float = 0.0) -> float:
    """CPU milliseconds of `label` per unit of work in `phase` (`idle` share subtracted)."""
    cpu = full["cpu"][phase]
    share = max(0.0, float(cpu["shares"].get(label, 0.0)) - idle)
    return 1000.0 * share * float(cpu["seconds"]) / count


def per_unit(
    full: Mapping[str, Any], scale: Mapping[str, Any] | None
) -> dict[str, dict[str, float]]:
    """CPU ms per unit of work, by unit (post, get_one, page, notifications, login), by label."""
    idle = full["cpu"][IDLE_PHASE]["shares"]
    posts = _requests(full, "post", "gateway")
    labels = [*KINDS, *SERVERS]
    units: dict[str, dict[str, float]] = {
        "post": {
            label: _ms(
                full,
                POST_PHASE,
                label,
                posts,
                # Background processes poll when idle (their share where no event flowed);
                # the servers keep all of theirs (no phase of the run had them idle).
                idle=float(idle.get(label, 0.0)) if "." in label else 0.0,
            )
            for label in labels
        }
    }
    for unit, phase in READ_PHASES.items():
        count = _requests(full, unit, "gateway")
        units[unit] = {
            label: _ms(full, phase, label, count) for label in ("gateway", "orders", *SERVERS)
        }
    logins = _requests(full, "login", "direct")
    units["login"] = {label: _ms(full, LOGIN_PHASE, label, logins) for label in ("auth", *SERVERS)}
    # A notifications page through the gateway: the gateway's cost of proxying a page of
    # orders (the same work: token, limits, proxy), the service's own from bench-scale.
    units["notifications"] = {"gateway": units["page"]["gateway"]}
    if scale is not None:
        largest = max(scale["sizes"], key=int)
        runs = scale["sizes"][largest]["requests"]["notifications"]["runs"]
        units["notifications"]["notifications"] = sum(
            r["service_cpu_ms_per_request"] for r in runs
        ) / len(runs)
        # Not its PostgreSQL share: that run's server also served other people's tests.
    return units


def ms_per_order(
    units: Mapping[str, Mapping[str, float]], mix: Mapping[str, float] = MIX
) -> dict[str, float]:
    """CPU ms per order placed (its POST, events and the mix's reads), by label."""
    total: dict[str, float] = {}
    for unit, count in {"post": 1.0, **mix}.items():
        for label, ms in units.get(unit, {}).items():
            total[label] = total.get(label, 0.0) + count * ms
    return total


def replicas(kind: Kind, cores: float) -> int:
    """Pods a kind needs for `cores` of work, each scaled out at its HPA's target."""
    per_pod = kind.cpu_request_m / 1000 * kind.hpa_target / 100
    return max(kind.min_replicas, math.ceil(cores / per_pod))


def model(full: Mapping[str, Any], scale: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per label: ms per order, cores per 1,000 orders/s, replicas at each rate."""
    units = per_unit(full, scale)
    per_order = ms_per_order(units)
    rows: dict[str, Any] = {}
    for label, ms in per_order.items():
        row: dict[str, Any] = {"ms_per_order": ms, "cores_per_1000": ms}
        if label in KINDS:
            row["replicas"] = {rate: replicas(KINDS[label], ms * rate / 1000) for rate in RATES}
        rows[label] = row
    return {"units": units, "per_order": rows}


def markdown(result: Mapping[str, Any]) -> str:
    """The generated section: inputs per unit, then cores and replicas per kind."""
    units = result["units"]
    labels = [*KINDS, *SERVERS]
    head = ["process"] + [f"ms per {u}" for u in units] + ["ms per order (with the mix)"]
    head = [h.replace("ms per post", "ms per POST + its events") for h in head]
    lines = [
        BEGIN,
        "",
        f"Inputs: `{FULL_RUN}` (`make bench`) and `{SCALE_RUN}` (`make bench-scale`, largest"
        f" size). Mix per order: 1 POST, " + ", ".join(f"{v:g} {k}" for k, v in MIX.items()) + ".",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label in labels:
        cells = [f"{units[u].get(label, 0.0):.2f}" for u in units]
        per = result["per_order"].get(label, {}).get("ms_per_order", 0.0)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | **{per:.2f}** |")
    lines += [
        "",
        "| kind (Deployment) | cores per 1,000 orders/s | CPU request | HPA target |"
        + "".join(f" replicas at {r:,}/s |" for r in RATES),
        "|---|---|---|---|" + "---|" * len(RATES),
    ]
    for label, kind in KINDS.items():
        row = result["per_order"].get(label, {"cores_per_1000": 0.0, "replicas": {}})
        reps = row.get("replicas") or dict.fromkeys(RATES, kind.min_replicas)
        lines.append(
            f"| {label} (`{kind.deployment}`) | {row['cores_per_1000']:.2f} |"
            f" {kind.cpu_request_m}m | {kind.hpa_target}% |"
            + "".join(f" {reps[r]} |" for r in RATES)
        )
    for label in SERVERS:
        cores = result["per_order"].get(label, {}).get("cores_per_1000", 0.0)
        lines.append(
            f"| {label} (outside the suite's pods) | {cores:.2f} | — | — |"
            + "".join(f" {cores * r / 1000:.1f} cores |" for r in RATES)
        )
    lines += ["", END]
    return "\n".join(lines)


def current() -> dict[str, Any]:
    """The model from the committed inputs."""
    scale_path = ROOT / SCALE_RUN
    scale = json.loads(scale_path.read_text()) if scale_path.exists() else None
    return model(load(FULL_RUN), scale)


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the generated section of docs/capacity.md."""
    del argv
    section = markdown(current())
    text = MARKDOWN.read_text() if MARKDOWN.exists() else f"# Capacity\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    MARKDOWN.write_text(head + section + tail)
    sys.stdout.write(section + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
