"""Helpers of the operations tests: real gunicorn and consumer processes started as containers
start them (through docker/entrypoint.sh), each stopped and reaped by the test that made it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 50 ms; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=15)


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

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{stderr.read_text()}")
        try:
            return requests.get(f"{server.url}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(answers, 20, "gunicorn to answer /healthz")
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
