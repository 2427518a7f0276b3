"""A real Prometheus (Debian's) scrapes the running suite and evaluates the suite's rules.

The orders relay is stopped while orders are placed: OutboxNotDraining fires within its
`for:` window (shortened here: 3 s of age for 5 s instead of 60 s for 2 minutes), read
from the orders web process, which reports the outbox from the database at every scrape.
Starting the relay again drains the outbox and the alert resolves.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from bench.suite import Suite
from tests.e2e.conftest import ROOT, Client
from tests.support import free_port, spawn, stop_process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RULES = ROOT / "deploy" / "monitoring" / "prometheus" / "rules.yml"
ALERT = "OutboxNotDraining"
RELAY = "orders.relay"


def short_window_rules() -> dict[str, Any]:
    """rules.yml with the outbox alert's threshold and `for:` cut to seconds."""
    document: dict[str, Any] = yaml.safe_load(RULES.read_text())
    [rule] = [r for g in document["groups"] for r in g["rules"] if r.get("alert") == ALERT]
    assert "> 60" in rule["expr"]
    rule["expr"] = rule["expr"].replace("> 60", "> 3")
    rule["for"] = "5s"
    return document


class Prometheus:
    """A Prometheus server on a free loopback port, scraping what it is given every second."""

    def __init__(self, base: Path, targets: dict[str, str]) -> None:
        self.port = free_port()
        (base / "rules.yml").write_text(yaml.safe_dump(short_window_rules()))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(base / "rules.yml")],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        (base / "prometheus.yml").write_text(yaml.safe_dump(config))
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail(
                "prometheus is not installed; `make test` installs it (apt-get install prometheus)"
            )
        self.process = spawn(
            [
                binary,
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            log=base / "prometheus.log",
        )
        self.log = base / "prometheus.log"

    def get(self, path: str, **params: str) -> Any:
        """A Prometheus API answer's data."""
        response = requests.get(f"http://127.0.0.1:{self.port}{path}", params=params, timeout=5)
        response.raise_for_status()
        return response.json()["data"]

    def ready(self) -> bool:
        """Prometheus answers and every target has been scraped successfully."""
        try:
            targets = self.get("/api/v1/targets")["activeTargets"]
        except requests.RequestException:
            return False
        return bool(targets) and all(t["health"] == "up" for t in targets)

    def alert_state(self, name: str) -> str:
        """firing, pending, or inactive."""
        alerts = [
            a for a in self.get("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name
        ]
        states = {a["state"] for a in alerts}
        return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"


@pytest.fixture(scope="module")
def relay_metrics_port() -> int:
    """Where the orders relay serves /metrics."""
    return free_port()


@pytest.fixture(scope="module")
def prometheus(suite: Suite, tmp_path_factory, relay_metrics_port: int) -> Iterator[Prometheus]:
    """Prometheus scraping the orders web process and the orders relay."""
    suite.stop_processes([RELAY])
    suite.start_worker(RELAY, METRICS_PORT=str(relay_metrics_port))
    server = Prometheus(
        tmp_path_factory.mktemp("prometheus"),
        {
            "suite-orders": f"127.0.0.1:{suite.ports['orders']}",
            "suite-orders-relay": f"127.0.0.1:{relay_metrics_port}",
        },
    )
    try:
        wait_for(server.ready, timeout=60, interval=0.5, what=f"prometheus scraping ({server.log})")
        yield server
    finally:
        stop_process(server.process)


# BOOK-1 is one of the demo products the e2e suite seeds.
ORDER = {"currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 1}]}


def place_order(client: Client) -> None:
    """One order through the gateway."""
    response = client.request("POST", "/api/v1/orders", json=ORDER)
    assert response.status_code == 201, response.text


def test_a_stopped_relay_fires_the_outbox_alert_and_its_restart_resolves_it(
    suite: Suite,
    prometheus: Prometheus,
    relay_metrics_port: int,
    register: Callable[[str], Client],
) -> None:
    client = register("Alerts")

    # With the relay running, orders leave the outbox at once: nothing fires.
    for _ in range(3):
        place_order(client)
    wait_for(
        lambda: (
            prometheus.get("/api/v1/query", query="max(outbox_backlog)")["result"][0]["value"][1]
            == "0"
        ),
        timeout=30,
        interval=0.5,
        what="the outbox drained while the relay runs",
    )
    assert prometheus.alert_state(ALERT) == "inactive"

    suite.stop_processes([RELAY])

    def fired() -> bool:
        place_order(client)
        return prometheus.alert_state(ALERT) == "firing"

    # 3 s of age, then 5 s of `for:`, plus a scrape and an evaluation of a second each.
    wait_for(fired, timeout=45, interval=1.0, what=f"{ALERT} firing with the relay stopped")

    suite.start_worker(RELAY, METRICS_PORT=str(relay_metrics_port))
    wait_for(
        lambda: prometheus.alert_state(ALERT) == "inactive",
        timeout=60,
        interval=0.5,
        what=f"{ALERT} resolved after the relay restarted",
    )


def test_prometheus_finds_no_fault_in_the_rules_it_loaded(prometheus: Prometheus) -> None:
    groups = prometheus.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]

    assert len(rules) == len(
        [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    )
    assert all(rule["health"] != "err" for rule in rules), [
        r for r in rules if r["health"] == "err"
    ]
