"""The merged OpenAPI document, built offline: each service's app in test config, no server.

`make sdk` writes it to clients/python/openapi.json and generates the SDK from it;
`python -m clients.openapi` prints it, for other tools. The merge is the gateway's own
(`gateway.openapi.merge_specs`), so the file is what `GET /openapi.json` on the gateway
answers when every service is up.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gateway.openapi import merge_specs

SERVICES = ("auth", "orders", "notifications")


@contextlib.contextmanager
def test_environment(var_dir: Path) -> Iterator[None]:
    """APP_ENV=test (embedded defaults allowed) and a throwaway VAR_DIR, restored afterwards.

    Through os.environ because not every service's create_app takes an `env`; the dev
    signing key auth makes for itself lands in `var_dir`, not in the working tree.
    """
    saved = {name: os.environ.get(name) for name in ("APP_ENV", "VAR_DIR")}
    os.environ.update({"APP_ENV": "test", "VAR_DIR": str(var_dir)})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def service_spec(service: str) -> dict[str, Any]:
    """One service's /openapi.json, from its app in test config (building it connects nowhere)."""
    module = importlib.import_module(f"services.{service}")
    app = module.create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    response = app.test_client().get("/openapi.json")
    if response.status_code != 200:
        raise RuntimeError(f"{service} answered {response.status_code} for /openapi.json")
    document: dict[str, Any] = response.get_json()
    return document


def document() -> dict[str, Any]:
    """The merged document of every service, as the gateway serves it."""
    with (
        tempfile.TemporaryDirectory(prefix="openapi-") as var_dir,
        test_environment(Path(var_dir)),
    ):
        specs = {service: service_spec(service) for service in SERVICES}
    return merge_specs(specs, unavailable=[])


def render(doc: dict[str, Any]) -> str:
    """The document as the JSON checked in: indented, keys in their given order, one newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the merged document (or write it to --output), for tools other than `make sdk`."""
    parser = argparse.ArgumentParser(prog="python -m clients.openapi")
    parser.add_argument("--output", type=Path, help="a file to write instead of stdout")
    args = parser.parse_args(argv)
    text = render(document())
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
