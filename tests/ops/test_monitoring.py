"""The alert and recording rules, their runbooks and the dashboards (deploy/monitoring/).

`promtool test rules` runs the rules' own unit tests (rules.test.yml); the checks here make
sure every alert links a runbook that exists and every dashboard query names a metric that
some process exports or a rule records.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ROOT

MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "prometheus" / "rules.yml"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
# The series the alerts ask for: exported by the suite's code, or by RabbitMQ's plugin.
RABBITMQ_METRICS = {"rabbitmq_queue_messages", "rabbitmq_queue_messages_ready"}
ALERTS = {
    "OutboxNotDraining",
    "DeadLetterQueueNotEmpty",
    "ConsumerBacklog",
    "NotificationDeliveryFailing",
    "HighServerErrorRatio",
    "ProcessNotReady",
}


def promtool() -> str:
    """promtool, which `make test` installs (Debian's prometheus package)."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed; `make test` installs it (apt-get install prometheus)"
        )
    return found


def rules() -> list[dict[str, Any]]:
    """Every rule of rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def exported_metrics() -> set[str]:
    """Names of the metrics the suite's code registers, as Prometheus exposes them."""
    names = set()
    for path in [
        *ROOT.glob("shared/**/*.py"),
        *ROOT.glob("services/*/*.py"),
        *ROOT.glob("gateway/*.py"),
    ]:
        for kind, name in re.findall(
            r"\b(Counter|Gauge|Histogram)\(\s*\"([a-z_]+)\"", path.read_text()
        ):
            if kind == "Counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
            elif kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric (or recorded series) names an expression reads."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    words = set(
        re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*[{\[)]|\s*$|\s*[><=!/*+-])", without_strings)
    )
    functions = {"sum", "max", "rate", "histogram_quantile", "by", "or", "and", "increase"}
    return {word for word in words if ("_" in word or ":" in word) and word not in functions}


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    check = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    result = subprocess.run(
        [promtool(), "test", "rules", "rules.test.yml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_the_issue_asks_for_exists_and_links_a_runbook_that_exists() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}

    assert set(alerts) == ALERTS
    for name, rule in alerts.items():
        runbook = rule["annotations"]["runbook_url"]
        assert (ROOT / runbook).is_file(), f"{name}: {runbook}"
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_every_alert_and_rule_reads_series_that_exist() -> None:
    known = exported_metrics() | RABBITMQ_METRICS | {"up"}
    recorded = {rule["record"] for rule in rules() if "record" in rule}

    assert {"outbox_oldest_unsent_age_seconds", "http_requests_total"} <= known
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known - recorded
        assert not unknown, f"{rule.get('alert') or rule.get('record')} reads {unknown}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_dashboard_query_reads_series_that_exist(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    known = (
        exported_metrics()
        | RABBITMQ_METRICS
        | {rule["record"] for rule in rules() if "record" in rule}
    )
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]

    assert dashboard["uid"] and expressions
    for expr in expressions:
        assert metric_names(expr), expr
        assert not metric_names(expr) - known, expr


def test_the_observability_profile_provisions_the_rules_and_the_dashboards() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    prometheus, grafana = compose["services"]["prometheus"], compose["services"]["grafana"]

    assert prometheus["profiles"] == grafana["profiles"] == ["observability"]
    assert (
        "./deploy/monitoring/prometheus/rules.yml:/etc/prometheus/rules.yml:ro"
        in prometheus["volumes"]
    )
    assert any(v.startswith("./deploy/monitoring/grafana/dashboards:") for v in grafana["volumes"])
    # Prometheus joins only the networks of what it scrapes: never a database's or Redis's.
    assert not set(prometheus["networks"]) & {"auth-db", "orders-db", "notifications-db", "cache"}
    scrape = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    targets = {
        target.split(":")[0]
        for job in scrape["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    processes = {name for name, s in compose["services"].items() if s.get("build")} - {
        "broker-users"
    }
    assert processes <= targets
