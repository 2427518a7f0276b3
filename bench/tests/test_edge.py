"""The nginx edge the benchmarks put in front of a suite: its upstreams and its limits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from bench.edge import Edge, EdgeUnavailable, nginx_binary
from bench.suite import Suite


def test_the_edge_in_front_of_a_suite_proxies_to_its_ports_at_its_rate_limits(
    tmp_path: Path,
) -> None:
    try:
        nginx_binary()
    except EdgeUnavailable as exc:
        pytest.fail(f"make install puts nginx on the machine: {exc}")
    suite = SimpleNamespace(
        ports={"gateway": 18080, "orders": 18002, "notifications": 18003, "auth": 18001},
        env={"GATEWAY_RATE_LIMIT_IP": "90/minute", "AUTH_URL": "not an edge setting"},
    )

    edge = Edge.for_suite(cast(Suite, suite), tmp_path)

    conf = (tmp_path / "edge.conf").read_text()
    for port in (18080, 18002, 18003):
        assert f"server 127.0.0.1:{port};" in conf
    assert "rate=90r/m" in conf  # the suite's limit, not the default 1200r/m
    assert edge.url == f"http://127.0.0.1:{edge.port}"
    assert f"127.0.0.1:{edge.port}" in conf
