"""Print the PrometheusRule of the Kubernetes monitoring component from rules.yml.

    .venv/bin/python scripts/prometheusrule.py > deploy/monitoring/kubernetes/prometheusrule.yaml

(`make monitoring-k8s`). The alert rules are written once, in
deploy/monitoring/prometheus/rules.yml, where promtool tests them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parents[1] / "deploy" / "monitoring" / "prometheus" / "rules.yml"
HEADER = (
    "# Generated from deploy/monitoring/prometheus/rules.yml by `make monitoring-k8s`\n"
    "# (tests/ops/test_kustomize.py checks the two agree): edit rules.yml, not this file.\n"
)


def main() -> None:
    """Write the PrometheusRule to stdout."""
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "flask-suite", "labels": {"app.kubernetes.io/part-of": "flask-suite"}},
        "spec": {"groups": yaml.safe_load(RULES.read_text())["groups"]},
    }
    sys.stdout.write(HEADER + yaml.safe_dump(document, sort_keys=False, width=100))


if __name__ == "__main__":
    main()
