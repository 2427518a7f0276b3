"""The compose stack as a plain module: start it, reach its edge, tear it down.

`make compose-test` (the `stack` fixture of tests/compose/conftest.py) and
`make bench-containers` (bench/containers.py) both use it. The images must exist already
(`make compose-test` builds them): the suite's four tagged `flask-suite/<service>:<tag>`
and the local stand-ins of docker/local/ for the third-party images. A stack runs under
its own project name with random secrets, publishes its edge on a free port of 127.0.0.1
only, and `down()` removes it with its volumes.

    with running(new_stack("compose-test")) as stack:
        requests.get(f"{stack.api}/orders", ...)
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support import WaitTimeout, free_port, wait_for

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
# Where the local mail catcher (the suite's SMTP sink) writes each message, one .eml file.
MAIL_DIR = "/var/mail-sink/mail"


class ComposeError(RuntimeError):
    """A docker or docker-compose command failed, or the stack did not become ready."""


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
    """Run the docker client; its output (ComposeError on a non-zero exit)."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise ComposeError(f"docker {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def required_images(tag: str) -> list[str]:
    """Every image the stack runs: the suite's four and the local stand-ins."""
    return [f"flask-suite/{name}:{tag}" for name in SUITE_IMAGES] + [
        f"flask-suite-local/{name}:{tag}" for name in LOCAL_IMAGES.values()
    ]


def missing_images(tag: str) -> list[str]:
    """The required images this machine's Docker engine does not have (all without docker)."""
    if shutil.which("docker") is None:
        return required_images(tag)
    return [
        image
        for image in required_images(tag)
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode
    ]


def missing_images_message(missing: Sequence[str]) -> str:
    """One line naming the missing images and what builds them."""
    return f"images not built (run `make compose-test` first): {', '.join(missing)}"


def stack_env(tag: str, edge_port: int) -> dict[str, str]:
    """The environment docker-compose runs with: the tag, free ports, fresh random secrets."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "SUITE_TAG": tag,
        "EDGE_ADDRESS": "127.0.0.1",
        "EDGE_PORT": str(edge_port),
        "MAILPIT_UI_PORT": str(free_port()),
        "RABBITMQ_UI_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        **{name: secrets.token_hex(16) for name in SECRETS},
        **{var: f"flask-suite-local/{name}:{tag}" for var, name in LOCAL_IMAGES.items()},
    }


def edge_ready(edge: str) -> bool:
    """The edge answers /healthz through nginx, and the API behind it is ready."""
    try:
        return requests.get(f"{edge}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class Stack:
    """A compose project and how to reach its edge."""

    project: str
    env: dict[str, str]
    edge: str
    # The -f arguments: compose_files() and any override of the caller's.
    files: list[str] = field(default_factory=compose_files)
    # Seconds from `up` to the edge ready, once up() returned.
    ready_seconds: float | None = None

    @property
    def api(self) -> str:
        """The API's base URL through the edge."""
        return f"{self.edge}/api/v1"

    def argv(self, *args: str) -> list[str]:
        """docker-compose's command line for this project."""
        return [*compose_command(), "-p", self.project, *self.files, *args]

    def compose(self, *args: str, timeout: float = 300) -> str:
        """Run docker-compose on this project; its output (ComposeError on a non-zero exit)."""
        result = subprocess.run(
            self.argv(*args),
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ComposeError(
                f"docker-compose {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def container(self, service: str) -> str:
        """The id of the (first) container of a service."""
        return self.compose("ps", "-q", service).split()[0]

    def up(self, timeout: float = START_TIMEOUT) -> float:
        """`up --detach` from the built images, then wait for the edge; the seconds it took."""
        started = time.monotonic()
        self.compose("up", "--detach", "--no-build", timeout=timeout)
        try:
            wait_for(lambda: edge_ready(self.edge), timeout=timeout, what="the edge ready")
        except WaitTimeout as exc:
            raise ComposeError(str(exc)) from None
        self.ready_seconds = time.monotonic() - started
        return self.ready_seconds

    def print_logs(self, tail: int = 40) -> None:
        """The last lines of every container's log, on this process's output."""
        sys.stdout.flush()
        subprocess.run(self.argv("logs", f"--tail={tail}"), cwd=ROOT, env=self.env, check=False)

    def down(self) -> None:
        """Stop and remove the containers, their networks and volumes (errors ignored)."""
        subprocess.run(
            self.argv("down", "--volumes", "--remove-orphans", "--timeout", "20"),
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            timeout=300,
            check=False,
        )

    def copy_mail(self, destination: Path) -> None:
        """Copy the mail catcher's messages (.eml files) into a directory of this machine.

        Nothing is copied before the first message: the catcher makes its directory then.
        """
        destination.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["docker", "cp", f"{self.container('mailpit')}:{MAIL_DIR}/.", str(destination)],
            capture_output=True,
            timeout=60,
            check=False,
        )


def new_stack(tag: str, *, extra_files: Sequence[str] = (), prefix: str = "suite-test") -> Stack:
    """A stack (not started) of the images tagged `tag`; `extra_files` are more overrides."""
    port = free_port()
    files = compose_files()
    for path in extra_files:
        files += ["-f", path]
    return Stack(
        project=f"{prefix}-{secrets.token_hex(3)}",
        env=stack_env(tag, port),
        edge=f"http://127.0.0.1:{port}",
        files=files,
    )


@contextmanager
def running(stack: Stack, timeout: float = START_TIMEOUT) -> Iterator[Stack]:
    """The stack up and ready; its last log lines on failure, `down --volumes` always."""
    try:
        stack.up(timeout)
        yield stack
    except BaseException:
        stack.print_logs()
        raise
    finally:
        stack.down()
