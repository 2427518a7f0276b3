"""CPU share per process during a benchmark phase: CPU seconds per wall second (1.0 = a core).

Processes are grouped by label: each suite process with its children (gunicorn's workers,
nginx's), this driver, and the servers the suite uses (PostgreSQL, RabbitMQ, Redis), found
by name. Those servers are shared with everything else on the machine, so their share
includes other users' work; `machine busy` and `not ours` show how much that was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import psutil

# Servers the suite talks to, by process name.
SYSTEM_GROUPS = {
    "postgres": ("postgres",),
    "rabbitmq": ("beam.smp", "erl_child_setup", "epmd", "inet_gethost"),
    "redis": ("redis-server",),
}

ProcessKey = tuple[int, float]  # (pid, create time): a reused pid is another process


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


@dataclass
class Snapshot:
    """CPU seconds of every process in each group, and the machine's totals, at one moment."""

    at: float
    groups: dict[str, dict[ProcessKey, float]]
    machine_busy: float
    machine_total: float


@dataclass
class PhaseCpu:
    """CPU share by group for one phase."""

    name: str
    seconds: float
    shares: dict[str, float] = field(default_factory=dict)


class CpuMeter:
    """Takes snapshots of the labelled process trees and turns pairs of them into shares."""

    def __init__(self, roots: Callable[[], Mapping[str, list[int]]]) -> None:
        # roots() -> label: pids whose whole trees belong to that label (asked at each snapshot,
        # so processes started later are counted from then on).
        self.roots = roots
        self.phases: list[PhaseCpu] = []

    def snapshot(self) -> Snapshot:
        """CPU seconds per process, grouped; plus the machine's busy and total seconds."""
        groups: dict[str, dict[ProcessKey, float]] = {}
        seen: set[int] = set()
        own = os.getpid()
        labelled = dict(self.roots())
        for label, pids in labelled.items():
            for pid in pids:
                for process in _tree(pid):
                    self._add(groups, label, process, seen)
        for process in psutil.process_iter(["name"]):
            if process.pid in seen:
                continue
            name = process.info.get("name") or ""
            for label, names in SYSTEM_GROUPS.items():
                if name in names:
                    self._add(groups, label, process, seen)
        # The driver itself, without children it spawned that belong to a label already.
        self._add(groups, "bench driver", psutil.Process(own), seen)
        times = psutil.cpu_times()
        busy = float(sum(times) - times.idle - getattr(times, "iowait", 0.0))
        return Snapshot(time.monotonic(), groups, busy, float(sum(times)))

    @staticmethod
    def _add(
        groups: dict[str, dict[ProcessKey, float]],
        label: str,
        process: psutil.Process,
        seen: set[int],
    ) -> None:
        try:
            key = (process.pid, process.create_time())
            groups.setdefault(label, {})[key] = _cpu_seconds(process)
        except psutil.Error:
            return  # gone between listing and reading
        seen.add(process.pid)

    def between(
        self, name: str, start: Snapshot, end: Snapshot, extra: Mapping[str, float]
    ) -> PhaseCpu:
        """Shares from two snapshots; `extra` adds CPU seconds measured elsewhere (wrk)."""
        wall = max(end.at - start.at, 1e-9)
        phase = PhaseCpu(name, wall)
        ours = 0.0
        for label in sorted(set(start.groups) | set(end.groups)):
            before = start.groups.get(label, {})
            after = end.groups.get(label, {})
            # A process that started during the phase counts from zero; one that ended
            # during it is lost (short-lived ones only: connections, one-off commands).
            used = sum(cpu - before.get(key, 0.0) for key, cpu in after.items())
            phase.shares[label] = max(0.0, used) / wall
            ours += max(0.0, used)
        for label, seconds in extra.items():
            phase.shares[label] = phase.shares.get(label, 0.0) + seconds / wall
            ours += seconds
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        busy = (end.machine_busy - start.machine_busy) / wall
        phase.shares["machine busy"] = busy
        # Clock-tick rounding makes small negatives possible; "not ours" is never below 0.
        phase.shares["not ours"] = max(0.0, busy - ours / wall - 1.0 / ticks)
        self.phases.append(phase)
        return phase
