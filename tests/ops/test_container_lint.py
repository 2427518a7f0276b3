"""The offline checks of the container files, in `make test` (which CI runs) as in `make lint`.

docker-compose.yml must resolve, refuse to resolve while a required secret is missing
(and say which), and every Dockerfile must pass hadolint. No Docker engine is needed:
`docker-compose config` (or the compose plugin's) only reads the file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILES = [ROOT / "docker" / "Dockerfile", *sorted(ROOT.glob("docker/local/*/Dockerfile"))]
HADOLINT = Path(sys.executable).parent / "hadolint"
# `${VAR:?message}`: compose refuses to start while VAR is unset or empty.
REQUIRED_VARIABLES = sorted(set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE_FILE.read_text())))


def compose_command() -> list[str]:
    """The compose plugin when the docker client has it, else docker-compose."""
    docker = shutil.which("docker")
    if docker:
        plugin = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is None:
        pytest.fail(
            "neither `docker compose` nor docker-compose is installed; "
            "`make test` installs docker-compose (scripts/ensure-services.sh compose)"
        )
    return [standalone]


def compose_config(tmp_path: Path, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`compose config -q` with exactly these variables: no .env, nothing from this shell."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), **variables}
    return subprocess.run(
        [
            *compose_command(),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(empty_env_file),
            "config",
            "-q",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dummy_values() -> dict[str, str]:
    """A value for every required variable, as `make lint-ops` gives them."""
    return dict.fromkeys(REQUIRED_VARIABLES, "lint")


def test_compose_file_requires_the_secrets() -> None:
    assert {"AUTH_DB_PASSWORD", "RABBITMQ_PASSWORD", "REDIS_PASSWORD"} <= set(REQUIRED_VARIABLES)


def test_compose_file_resolves_with_every_required_variable_set(tmp_path: Path) -> None:
    result = compose_config(tmp_path, dummy_values())

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", REQUIRED_VARIABLES)
def test_compose_file_refuses_a_missing_secret_and_names_it(tmp_path: Path, missing: str) -> None:
    variables = dummy_values()
    del variables[missing]

    result = compose_config(tmp_path, variables)

    assert result.returncode != 0
    assert missing in result.stderr


def test_compose_file_with_a_bad_key_is_refused(tmp_path: Path) -> None:
    # The same check on a broken copy: `config -q` really validates, it does not just parse.
    broken = COMPOSE_FILE.read_text().replace(
        "    stop_grace_period: 40s\n", "    stop_grace: 40s\n", 1
    )
    assert broken != COMPOSE_FILE.read_text()
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(broken)

    result = subprocess.run(
        [*compose_command(), "--project-directory", str(ROOT), "-f", str(copy), "config", "-q"],
        cwd=tmp_path,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), **dummy_values()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "stop_grace" in result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_each_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(HADOLINT), str(dockerfile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")

    result = subprocess.run(
        [str(HADOLINT), str(careless)], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the `latest` tag
