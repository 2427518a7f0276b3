"""`make chaos` in short, under `make test`: a broker node killed and each crash point
reached once while orders are placed, then the same verdict as the full run.

Lean (`chaos.run.short_run`, also `python -m chaos.run --short`): one gunicorn worker per
service, one of each background process, one gateway, four users, 400 orders at 20/s. It
needs root (network namespaces), like `make chaos`.
"""

from __future__ import annotations

import json
import os

import pytest

from chaos.run import short_run

pytestmark = [pytest.mark.chaos, pytest.mark.usefixtures("processes_without_coverage")]


# The run itself takes about 90 s; starting a broker cluster and the suite beside the rest of
# `make test` (xdist workers on two cores) can take two minutes more.
@pytest.mark.timeout(300)
def test_a_node_kill_and_every_crash_point_under_load_lose_and_duplicate_nothing() -> None:
    if os.geteuid() != 0:
        pytest.fail("the chaos run needs root: it creates network namespaces")
    run = short_run()
    result: dict[str, object] = {}
    try:
        run.start()
        run.drive()
        run.settle(timeout=60)
        result = run.observe()
    finally:
        run.stop(keep_logs=not result.get("passed"))
    report = json.dumps(result, indent=2)
    assert result["passed"], report
    assert result["faults_by_kind"] == {
        "kill -9 leader": 1,
        "crash relay.after_publish": 1,
        "crash consumer.after_commit": 1,
        "crash delivery.after_send": 1,
    }, report
    assert result["orders"] == {"placed": 400, "accepted": 400, "unknown": 0}, report
