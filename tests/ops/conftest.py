"""Helpers of the operations tests: real gunicorn and consumer processes started as containers
start them (through docker/entrypoint.sh), each stopped and reaped by the test that made it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port, stop_process, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
BIN = Path(sys.executable).parent


def process_env(**extra: str) -> dict[str, str]:
    """The test environment plus the venv's bin first on PATH (gunicorn, flask, python)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


@dataclass
class Server:
    """A gunicorn started through the container entry point."""

    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def json_lines(self) -> list[str]:
        """Lines the server wrote on stdout so far."""
        return [line for line in self.stdout.read_text().splitlines() if line.strip()]

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not go within 15 s; returns the exit code."""
        return stop_process(self.process)


def start_probe_server(tmp_path: Path, **settings: str) -> Server:
    """`docker/entrypoint.sh web` serving tests/ops/probe_app.py, ready to answer."""
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = process_env(
        SERVICE_NAME="probe",
        WSGI_APP="probe_app:app",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        **settings,
    )
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(
            [str(ENTRYPOINT), "web", "--pythonpath", str(HERE)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    server = Server(process, f"http://127.0.0.1:{port}", stdout, stderr)
    wait_until_healthy(server.url, process, stderr, timeout=20)
    return server


@pytest.fixture
def probe_server_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start probe servers; any still running at the end of the test is stopped."""
    started: list[Server] = []

    def start(**settings: str) -> Server:
        directory = tmp_path / f"server-{len(started)}"
        directory.mkdir()
        server = start_probe_server(directory, **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
