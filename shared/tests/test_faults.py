"""The crash points: armed only by FAULT_POINTS, only outside production, and deadly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import ConfigError, Env, common_config
from shared.faults import CRASH_POINTS, RELAY_AFTER_PUBLISH, armed_points

REPO = Path(__file__).resolve().parents[2]


def run_crash_point(name: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A process that passes crash point `name`, then prints that it survived."""
    code = f"from shared.faults import crash_point; crash_point({name!r}); print('survived')"
    environ = {k: v for k, v in os.environ.items() if k != "FAULT_POINTS"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", sorted(CRASH_POINTS))
def test_an_armed_crash_point_kills_the_process_on_the_spot(name):
    result = run_crash_point(name, APP_ENV="test", FAULT_POINTS=f" {name} ")
    assert result.returncode == -signal.SIGKILL
    assert "survived" not in result.stdout


def test_a_crash_point_that_is_not_armed_does_nothing():
    result = run_crash_point(
        RELAY_AFTER_PUBLISH, APP_ENV="test", FAULT_POINTS="delivery.after_send"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "survived"


def test_fault_points_are_refused_at_start_up_in_production():
    env = Env({"APP_ENV": "production", "FAULT_POINTS": RELAY_AFTER_PUBLISH})
    with pytest.raises(ConfigError, match="FAULT_POINTS"):
        common_config("orders", env)


def test_an_unknown_fault_point_is_refused_rather_than_silently_never_firing():
    with pytest.raises(ConfigError, match="relay.after_publsh"):
        armed_points({"APP_ENV": "test", "FAULT_POINTS": "relay.after_publsh"})


def test_fault_points_are_off_unless_set():
    assert armed_points({"APP_ENV": "test"}) == frozenset()
    assert armed_points({"APP_ENV": "production", "FAULT_POINTS": " "}) == frozenset()
    assert armed_points({"APP_ENV": "local", "FAULT_POINTS": "relay.after_publish"}) == {
        RELAY_AFTER_PUBLISH
    }
