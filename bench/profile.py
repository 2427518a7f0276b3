"""Sampling profiles (py-spy) of a process tree under load, summarised by function and library."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
REPO = Path(__file__).resolve().parents[1]
OURS = frozenset({"shared", "services", "gateway", "bench"})


def py_spy() -> str | None:
    """The py-spy binary next to this interpreter, or on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def start_recording(
    pid: int, output: Path, *, seconds: int, rate: int = 200
) -> subprocess.Popen[bytes]:
    """Record pid and its children (gunicorn workers) for `seconds`, as collapsed stacks.

    Only samples of the thread holding the GIL count (`--gil`): on a machine whose cores
    are all busy, CPU is what bounds throughput, and waits on PostgreSQL would drown it.
    """
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",  # do not pause the workers to read their stacks
            "--gil",  # only the thread holding the GIL: where the Python CPU time goes
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def library_of(path: str) -> str:
    """The top-level package of a source file as py-spy names it (relative to sys.path)."""
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(str(REPO) + "/"):
        path = path[len(str(REPO)) + 1 :]
    elif "/python3." in path:
        path = path.split("/python3.", 1)[1].split("/", 1)[-1]
    top = path.split("/", 1)[0].removesuffix(".py")
    return f"{top} (ours)" if top in OURS else top


def _frame_name(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    path = match.group("file")
    short = path.split("site-packages/", 1)[-1].removeprefix(str(REPO) + "/")
    return f"{match.group('func')} ({short})", path


def summarize(raw: Path, top: int = 15) -> dict[str, Any]:
    """Inclusive and self shares by function, and self share by library, from py-spy raw output."""
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # py-spy puts "process <pid>:<cmdline>" first when following subprocesses.
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        total += count
        names = [_frame_name(f) for f in frames]
        for name in {n for n, _ in names}:
            inclusive[name] += count
        leaf, leaf_path = names[-1]
        self_time[leaf] += count
        libraries[library_of(leaf_path) if leaf_path else leaf] += count
    if not total:
        return {"samples": 0, "inclusive": [], "self": [], "by_library": []}

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, count / total) for name, count in counter.most_common(top)]

    # Frames every sample passes through (thread bootstrap, gunicorn's loop) say nothing.
    informative = Counter({k: v for k, v in inclusive.items() if v < total * 0.97})
    # Our own functions below the entry points: which part of the suite's code costs.
    ours = Counter(
        {
            k: v
            for k, v in informative.items()
            if k.rsplit("(", 1)[-1].split("/", 1)[0] in OURS and v < total * 0.85
        }
    )
    return {
        "samples": total,
        "inclusive": shares(informative),
        "ours_inclusive": shares(ours),
        "self": shares(self_time),
        "by_library": shares(libraries),
    }
