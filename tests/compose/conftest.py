"""The whole compose stack, started once for the tests here (`make compose-test`).

`make compose-test` builds the images first: the suite's four from uv.lock on the Debian
base of docker/base/build.sh, and the local stand-ins of docker/local/ for the third-party
images. The stack runs under its own project name, publishes its edge on a free port of
127.0.0.1 only, and is torn down with its volumes whatever the tests did.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
SUITE_IMAGES = ("auth", "orders", "notifications", "gateway")
# The compose file's third-party images, by the variable that names each.
LOCAL_IMAGES = {
    "POSTGRES_IMAGE": "postgres",
    "RABBITMQ_IMAGE": "rabbitmq",
    "REDIS_IMAGE": "redis",
    "NGINX_IMAGE": "nginx",
    "MAILPIT_IMAGE": "mailcatcher",
    "PROMETHEUS_IMAGE": "prometheus",
}
SECRETS = (
    "AUTH_DB_PASSWORD",
    "ORDERS_DB_PASSWORD",
    "NOTIFICATIONS_DB_PASSWORD",
    "RABBITMQ_PASSWORD",
    "RABBITMQ_AUTH_PASSWORD",
    "RABBITMQ_ORDERS_PASSWORD",
    "RABBITMQ_NOTIFICATIONS_PASSWORD",
    "RABBITMQ_GATEWAY_PASSWORD",
    "REDIS_PASSWORD",
    "REDIS_GATEWAY_PASSWORD",
)
START_TIMEOUT = 300


@dataclass
class Stack:
    """A running compose project and how to reach its edge."""

    project: str
    env: dict[str, str]
    edge: str

    @property
    def api(self) -> str:
        """The API's base URL through the edge."""
        return f"{self.edge}/api/v1"

    def compose(self, *args: str, timeout: float = 300) -> str:
        """Run docker-compose on this project; its output (fails on a non-zero exit)."""
        result = subprocess.run(
            [*compose_command(), "-p", self.project, *compose_files(), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"docker-compose {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def container(self, service: str) -> str:
        """The id of the (first) container of a service."""
        return self.compose("ps", "-q", service).split()[0]


def compose_command() -> list[str]:
    """docker-compose (1.29 from Debian), else the compose plugin."""
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else ["docker", "compose"]


def compose_files() -> list[str]:
    """The project's compose file with the test's override for the local mail catcher."""
    return ["-f", "docker-compose.yml", "-f", "tests/compose/local-images.yml"]


def suite_tag() -> str:
    """The tag `make compose-test` built the images with."""
    return os.environ.get("SUITE_TAG", "compose-test")


def docker(*args: str, timeout: float = 120) -> str:
    """Run the docker client; its output (fails on a non-zero exit)."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def edge_ready(edge: str) -> bool:
    """The edge answers /healthz through nginx, and the API behind it is ready."""
    try:
        return requests.get(f"{edge}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The compose stack up and healthy; `down --volumes` afterwards."""
    tag = suite_tag()
    missing = [
        image
        for image in [f"flask-suite/{name}:{tag}" for name in SUITE_IMAGES]
        + [f"flask-suite-local/{name}:{tag}" for name in LOCAL_IMAGES.values()]
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode
    ]
    if missing:
        pytest.fail(f"images not built (run `make compose-test`): {', '.join(missing)}")
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "SUITE_TAG": tag,
        "EDGE_ADDRESS": "127.0.0.1",
        "EDGE_PORT": str(port),
        "MAILPIT_UI_PORT": str(free_port()),
        "RABBITMQ_UI_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        **{name: secrets.token_hex(16) for name in SECRETS},
        **{var: f"flask-suite-local/{name}:{tag}" for var, name in LOCAL_IMAGES.items()},
    }
    stack = Stack(
        project=f"suite-test-{secrets.token_hex(3)}", env=env, edge=f"http://127.0.0.1:{port}"
    )
    try:
        started = time.monotonic()
        stack.compose("up", "--detach", "--no-build", timeout=START_TIMEOUT)
        wait_for(lambda: edge_ready(stack.edge), timeout=START_TIMEOUT, what="the edge ready")
        print(f"compose stack up and ready in {time.monotonic() - started:.0f} s")  # noqa: T201
        yield stack
    except BaseException:
        subprocess.run(
            [*compose_command(), "-p", stack.project, *compose_files(), "logs", "--tail=40"],
            cwd=ROOT,
            env=env,
            check=False,
        )
        raise
    finally:
        subprocess.run(
            [
                *compose_command(),
                "-p",
                stack.project,
                *compose_files(),
                "down",
                "--volumes",
                "--remove-orphans",
                "--timeout",
                "20",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )
