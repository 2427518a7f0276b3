"""The checked-in SDK is what the services' endpoints generate: no drift after an API change."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from clients.sdk import SDK_DIR, generate

# What running or importing the SDK leaves beside it, not part of what `make sdk` writes.
IGNORED_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` by its relative path, with its content."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not IGNORED_PARTS & set(path.relative_to(root).parts)
    }


def describe_drift(checked_in: dict[str, bytes], generated: dict[str, bytes]) -> str:
    """What differs, for the failure message: missing, stale and changed files, one diff."""
    lines = ["clients/python/ is not what the current endpoints generate: run `make sdk`."]
    for name in sorted(generated.keys() - checked_in.keys()):
        lines.append(f"  missing: {name}")
    for name in sorted(checked_in.keys() - generated.keys()):
        lines.append(f"  no longer generated: {name}")
    changed = sorted(
        n for n in checked_in.keys() & generated.keys() if checked_in[n] != generated[n]
    )
    for name in changed:
        lines.append(f"  changed: {name}")
    if changed:
        first = changed[0]
        diff = difflib.unified_diff(
            checked_in[first].decode(errors="replace").splitlines(),
            generated[first].decode(errors="replace").splitlines(),
            f"checked in: {first}",
            f"generated: {first}",
            lineterm="",
            n=2,
        )
        lines.extend(list(diff)[:40])
    return "\n".join(lines)


def test_the_checked_in_sdk_is_what_the_endpoints_generate(tmp_path: Path) -> None:
    generate(tmp_path / "python")

    checked_in, generated = tree(SDK_DIR), tree(tmp_path / "python")

    if checked_in != generated:
        pytest.fail(describe_drift(checked_in, generated), pytrace=False)
