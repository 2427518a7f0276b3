"""Drive an HTTP endpoint with wrk (Debian's package) and read its results and its own CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("lua") / "api.lua"
MARKER = "WRK_JSON "


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency (ms), errors, and the generator's own CPU."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    generator_cpu_seconds: float

    @property
    def errors(self) -> int:
        """Every failed request: non-2xx answers plus socket errors and timeouts."""
        return self.non2xx + self.socket_errors

    @property
    def generator_cpu_share(self) -> float:
        """wrk's CPU seconds per wall second (1.0 = one core busy)."""
        return self.generator_cpu_seconds / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived figures."""
        return {
            **asdict(self),
            "errors": self.errors,
            "generator_cpu_share": round(self.generator_cpu_share, 3),
        }


def wrk_path() -> str:
    """The wrk binary; WrkError with the install hint when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not installed: apt-get install -y wrk (as root)")
    return path


def parse_output(text: str, cpu_seconds: float) -> WrkResult:
    """The result from wrk's output (the `WRK_JSON` line our Lua `done()` prints)."""
    for line in text.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise WrkError(f"no result line in wrk's output:\n{text[-2000:]}")
    seconds = data["duration_us"] / 1e6
    latency = data["latency_us"]
    errors = data["errors"]
    return WrkResult(
        requests=int(data["requests"]),
        seconds=seconds,
        rps=data["requests"] / seconds if seconds else 0.0,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        # `status` counts >= 400 only; our response() counts everything outside 2xx.
        non2xx=max(int(data["non2xx"]), int(errors["status"])),
        socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
        generator_cpu_seconds=cpu_seconds,
    )


def write_rows(rows: Sequence[Sequence[str]], directory: Path, name: str) -> Path:
    """A data file for the Lua script: one tab-separated row per line."""
    path = directory / f"{name}.tsv"
    path.write_text("".join("\t".join(row) + "\n" for row in rows))
    return path


def run_wrk(
    base_url: str,
    mode: str,
    data_file: Path,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    timeout_s: int = 10,
) -> WrkResult:
    """Run wrk once against base_url in `mode`; count its CPU from its own rusage."""
    argv = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(SCRIPT),
        base_url,
        "--",
        mode,
        str(data_file),
    ]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + seconds + 60
        while True:
            # wait4 gives the child's own rusage: the load generator's CPU, nothing else.
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                raise WrkError(f"wrk did not finish: {' '.join(argv)}")
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise WrkError(f"wrk exited with {process.returncode}:\n{text[-2000:]}")
    return parse_output(text, usage.ru_utime + usage.ru_stime)
