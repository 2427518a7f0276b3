"""The compatibility gate: a published version may only gain optional fields.

Every published (type, version) has its data's JSON Schema recorded in `snapshots/`
(`<type>.v<version>.json`). `breaking_changes(snapshot, current)` lists what in the current
schema would break a consumer built against the snapshot: a field removed or renamed, a
field whose type or limits changed, a new required field, anything else about the object
changed. Added optional fields and reworded descriptions pass.

`python -m shared.contracts.compatibility` (`make contract-snapshots`) records the snapshot
of a new version and refreshes one whose only changes pass the gate; it refuses to
overwrite a snapshot with a breaking change (that needs a new version).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.contracts.catalogue import CATALOGUE
from shared.contracts.registry import Catalogue, Contract

SNAPSHOTS_DIR = Path(__file__).resolve().parent / "snapshots"
# Words for people, not rules for data: changing them breaks nobody.
_ANNOTATIONS = frozenset({"title", "description", "examples", "default", "$comment"})


def _rules(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in _ANNOTATIONS}


def breaking_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str = "data"
) -> list[str]:
    """What in `new` would break a consumer of `old` (empty when compatible)."""
    problems: list[str] = []
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    for name, old_field in old_props.items():
        where = f"{path}.{name}"
        if name not in new_props:
            problems.append(f"{where} was removed (or renamed)")
        else:
            problems.extend(breaking_changes(old_field, new_props[name], where))
    old_required = set(old.get("required", ()))
    for name in sorted(set(new.get("required", ())) - old_required):
        problems.append(f"{path}.{name} is a new required field")
    if "items" in old or "items" in new:
        problems.extend(breaking_changes(old.get("items", {}), new.get("items", {}), f"{path}[]"))
    skip = {"properties", "required", "items"}
    old_rules = {k: v for k, v in _rules(old).items() if k not in skip}
    new_rules = {k: v for k, v in _rules(new).items() if k not in skip}
    for key in sorted(old_rules.keys() | new_rules.keys()):
        if old_rules.get(key) != new_rules.get(key):
            problems.append(
                f"{path}: {key} changed from {old_rules.get(key)!r} to {new_rules.get(key)!r}"
            )
    return problems


def snapshot_path(contract: Contract[Any], directory: Path = SNAPSHOTS_DIR) -> Path:
    """Where the snapshot of one contract lives."""
    return directory / f"{contract.key}.json"


def load_snapshots(directory: Path = SNAPSHOTS_DIR) -> dict[str, dict[str, Any]]:
    """Every recorded snapshot, by `<type>.v<version>`."""
    return {
        path.name.removesuffix(".json"): json.loads(path.read_text())
        for path in sorted(directory.glob("*.json"))
    }


def gate(catalogue: Catalogue, snapshots: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every reason the catalogue may not ship against these snapshots (empty: it may)."""
    problems: list[str] = []
    current = {contract.key: contract for contract in catalogue.contracts}
    for key in sorted(snapshots.keys() - current.keys()):
        problems.append(
            f"{key} is published but no longer in the catalogue (retiring a version means "
            "deleting its snapshot too, once no consumer reads it)"
        )
    for key, contract in current.items():
        if key not in snapshots:
            problems.append(f"{key} has no snapshot: run `make contract-snapshots`")
            continue
        problems.extend(
            f"{key}: {problem}"
            for problem in breaking_changes(snapshots[key], contract.json_schema())
        )
    return problems


def _dump(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def record(catalogue: Catalogue = CATALOGUE, directory: Path = SNAPSHOTS_DIR) -> list[str]:
    """Write missing snapshots and compatible refreshes; return what was refused."""
    refused: list[str] = []
    directory.mkdir(parents=True, exist_ok=True)
    for contract in catalogue.contracts:
        path = snapshot_path(contract, directory)
        schema = contract.json_schema()
        if path.exists():
            problems = breaking_changes(json.loads(path.read_text()), schema)
            if problems:
                refused.extend(f"{contract.key}: {problem}" for problem in problems)
                continue
        path.write_text(_dump(schema))
    return refused


def main(argv: Sequence[str] | None = None) -> int:
    """Record snapshots; exit 1 (writing nothing for them) on versions with breaking changes."""
    del argv
    refused = record()
    for problem in refused:
        sys.stderr.write(f"refused: {problem} (publish a new version instead)\n")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
