"""docs/asyncapi.yaml is what the catalogue generates, and the AsyncAPI project's CLI accepts it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from shared import contracts
from shared.contracts.asyncapi import DOCUMENT_PATH, document, main, render_yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "asyncapi"
CLI = TOOLS / "node_modules" / ".bin" / "asyncapi"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """The CLI's `validate` on `path` (installed by `scripts/ensure-services.sh asyncapi`)."""
    assert CLI.exists(), "run `scripts/ensure-services.sh asyncapi` (make test does)"
    return subprocess.run(
        [str(CLI), "validate", str(path), "--diagnostics-format", "text"],
        capture_output=True,
        text=True,
        timeout=120,
        # Its usage metrics stay off: the config it reads says so.
        env={**os.environ, "ASYNCAPI_METRICS_CONFIG_PATH": str(TOOLS / "analytics-off.json")},
        check=False,
    )


def test_the_checked_in_document_is_the_one_the_catalogue_generates():
    assert DOCUMENT_PATH.read_text() == render_yaml(document()), "run `make asyncapi`"
    assert main(["--check"]) == 0


def test_the_check_fails_when_the_checked_in_document_is_stale(tmp_path: Path):
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(DOCUMENT_PATH.read_text().replace("user.registered", "user.signed_up"))

    assert main(["--check", "--output", str(stale)]) == 1


def test_every_contract_has_a_channel_a_message_and_its_data_schema():
    doc = document()
    for contract in contracts.CATALOGUE.contracts:
        message = doc["components"]["messages"][contract.key]
        assert doc["channels"][contract.type]["messages"][contract.key]
        assert message["payload"]["properties"]["dataschema"]["const"] == contract.dataschema
        assert doc["components"]["schemas"][contract.key]["$id"] == contract.dataschema
    for queue in ("orders.events", "orders.events.retry.3", "orders.events.dlq"):
        assert "user.registered.v1" in doc["channels"][queue]["messages"]
    assert "gateway.receive" in doc["operations"]


def test_the_asyncapi_cli_validates_the_document():
    result = validate(DOCUMENT_PATH)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout


def test_the_asyncapi_cli_refuses_a_document_that_references_a_missing_message(tmp_path: Path):
    broken = yaml.safe_load(DOCUMENT_PATH.read_text())
    broken["components"]["messages"].pop("user.registered.v1")
    path = tmp_path / "asyncapi.yaml"
    path.write_text(yaml.safe_dump(broken, sort_keys=False))

    result = validate(path)

    assert result.returncode != 0, result.stdout
