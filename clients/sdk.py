"""The Python SDK under clients/python/, generated from the merged OpenAPI document.

`python -m clients.sdk` (`make sdk`) writes the document (clients.openapi) and has
openapi-python-client generate the package `suite_client` from it, with the settings in
clients/sdk.yaml. The tree is built in a scratch directory and then replaces
clients/python/ whole, so an endpoint that is gone leaves no module behind.
tests/clients/test_sdk_drift.py generates the same way and compares.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from clients import openapi

CLIENTS_DIR = Path(__file__).resolve().parent
SDK_DIR = CLIENTS_DIR / "python"
CONFIG_PATH = CLIENTS_DIR / "sdk.yaml"
SPEC_NAME = "openapi.json"


class GenerationError(RuntimeError):
    """openapi-python-client failed or warned: the document says something it cannot express."""


def generate(output_dir: Path) -> None:
    """Write the merged document and the SDK generated from it into `output_dir` (new)."""
    output_dir.mkdir(parents=True)
    spec_path = output_dir / SPEC_NAME
    spec_path.write_text(openapi.render(openapi.document()))
    bin_dir = Path(sys.executable).parent
    # The generator's ruff hooks run whatever `ruff` is first on PATH: make it the locked one.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(spec_path),
            "--config",
            str(CONFIG_PATH),
            "--meta",
            "uv",
            "--output-path",
            str(output_dir),
            "--overwrite",  # the directory holds the document already
            "--fail-on-warning",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise GenerationError(f"openapi-python-client failed:\n{result.stdout}{result.stderr}")


def main() -> int:
    """Regenerate clients/python/ from the services' current endpoints."""
    with tempfile.TemporaryDirectory(prefix="sdk-") as scratch:
        fresh = Path(scratch) / "python"
        try:
            generate(fresh)
        except GenerationError as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        shutil.rmtree(SDK_DIR, ignore_errors=True)
        shutil.copytree(fresh, SDK_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
