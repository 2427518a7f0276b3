"""The merged OpenAPI document, built offline: each service's app in test config, no server.

`python -m clients.openapi` writes clients/python/openapi.json (`make sdk` does, before it
regenerates the SDK from it); `--check` only says whether the checked-in file is current.
The merge is the gateway's own (`gateway.openapi.merge_specs`), so the file is what
`GET /openapi.json` on the gateway answers when every service is up.
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
DOCUMENT_PATH = Path(__file__).resolve().parent / "python" / "openapi.json"


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
    """Write the merged document, or (--check) fail when the checked-in one is not current."""
    parser = argparse.ArgumentParser(prog="python -m clients.openapi")
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument("--output", type=Path, default=DOCUMENT_PATH)
    args = parser.parse_args(argv)
    text = render(document())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is out of date: run `make sdk`\n")
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
