"""The wheel and the runtime install carry the services, not their tests or the test harness."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from setuptools import find_namespace_packages

ROOT = Path(__file__).resolve().parents[2]


def shipped_packages() -> list[str]:
    """The packages setuptools puts in the wheel, found with pyproject's own find settings."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    return find_namespace_packages(
        where=str(ROOT), include=find.get("include", ("*",)), exclude=find.get("exclude", ())
    )


def test_the_wheel_ships_the_services_and_no_tests() -> None:
    packages = shipped_packages()

    assert {
        "shared",
        "gateway",
        "services.auth",
        "services.orders",
        "services.notifications",
    } <= set(packages)
    test_packages = [name for name in packages if "tests" in name.split(".") or name == "bench"]
    assert test_packages == []


def imported_modules(module: Path) -> set[str]:
    """The top-level names a module imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(), filename=str(module))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_shipped_module_imports_pytest_or_the_harness() -> None:
    offenders = [
        str(module.relative_to(ROOT))
        for package in shipped_packages()
        for module in ROOT.joinpath(*package.split(".")).glob("*.py")
        if imported_modules(module) & {"pytest", "tests"}
    ]

    assert offenders == []
