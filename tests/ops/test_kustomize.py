"""deploy/k8s as kustomize renders it: the base and each overlay, validated as Kubernetes
objects (the Prometheus Operator's by their own fields), with what each overlay changes.

`kubectl kustomize` renders offline; no cluster is needed.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
RULES = ROOT / "deploy" / "monitoring" / "prometheus" / "rules.yml"


@functools.cache
def render(path: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize deploy/k8s/<path>` prints."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (its `kustomize` renders deploy/k8s)")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def web(deployments: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The web Deployments."""
    return {
        name: d
        for name, d in deployments.items()
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "web"
    }


@pytest.mark.parametrize("path", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_every_rendered_object_is_valid_kubernetes_in_the_suites_namespace(path: str) -> None:
    objects = render(path)
    version = kubernetes_validate.latest_version()

    assert by_kind(objects, "Deployment")
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "flask-suite", obj["metadata"]["name"]
        if obj["kind"] in OPERATOR_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        kubernetes_validate.validate(obj, version, strict=True)


def test_dev_runs_one_small_pod_per_process_on_its_own_host() -> None:
    base, dev = render("base"), render("overlays/dev")
    deployments = by_kind(dev, "Deployment")

    assert set(deployments) == set(by_kind(base, "Deployment"))
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] == 1, name
        requests = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
        assert requests == {"cpu": "25m", "memory": "96Mi"}, name
    assert all(p["spec"]["minAvailable"] == 0 for p in by_kind(dev, "PodDisruptionBudget").values())
    assert all(
        h["spec"]["minReplicas"] == 1 for h in by_kind(dev, "HorizontalPodAutoscaler").values()
    )
    ingress = by_kind(dev, "Ingress")["gateway"]["spec"]
    assert ingress["rules"][0]["host"] == ingress["tls"][0]["hosts"][0] == "api.dev.example.test"
    assert not {o["kind"] for o in dev} & OPERATOR_KINDS


def test_prod_runs_three_bigger_web_pods_per_service_and_the_monitoring_component() -> None:
    base, prod = render("base"), render("overlays/prod")
    deployments = by_kind(prod, "Deployment")
    base_web = web(by_kind(base, "Deployment"))

    assert set(web(deployments)) == set(base_web) == {"auth", "orders", "notifications", "gateway"}
    for name, deployment in web(deployments).items():
        assert deployment["spec"]["replicas"] == 3, name
        resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources["limits"] == {"cpu": "2", "memory": "1Gi"}, name
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"registry.example.com/flask-suite/{name}:0.1.0", name
    autoscalers = web(by_kind(prod, "HorizontalPodAutoscaler"))
    assert all(h["spec"]["minReplicas"] == 3 for h in autoscalers.values())
    # Workers keep the base's two replicas.
    assert deployments["orders-relay"]["spec"]["replicas"] == 2
    ingress = by_kind(prod, "Ingress")["gateway"]["spec"]
    assert ingress["rules"][0]["host"] == "api.example.com"
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= {o["kind"] for o in prod}
    dashboards = by_kind(prod, "ConfigMap")["flask-suite-dashboards"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(dashboards["data"]) == {"service-levels.json", "events.json"}


def test_the_monitors_select_every_process_and_name_jobs_as_the_alerts_expect() -> None:
    prod = render("overlays/prod")
    deployments = by_kind(prod, "Deployment")
    service_monitor = by_kind(prod, "ServiceMonitor")["flask-suite-web"]["spec"]
    pod_monitor = by_kind(prod, "PodMonitor")["flask-suite-workers"]["spec"]
    excluded = {e["key"]: e for e in pod_monitor["selector"]["matchExpressions"]}[
        "app.kubernetes.io/component"
    ]["values"]

    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        ports = {
            p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
        if labels["app.kubernetes.io/component"] == "web":
            assert service_monitor["selector"]["matchLabels"].items() <= labels.items(), name
            assert "http" in ports, name
        else:
            assert labels["app.kubernetes.io/component"] not in excluded, name
            assert "metrics" in ports, name
    for endpoint in [*service_monitor["endpoints"], *pod_monitor["podMetricsEndpoints"]]:
        assert endpoint["relabelings"][0]["targetLabel"] == "job"
        assert endpoint["relabelings"][0]["replacement"].startswith("suite-")


def test_the_prometheusrule_holds_exactly_the_tested_rules() -> None:
    [rule] = by_kind(render("overlays/prod"), "PrometheusRule").values()

    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"], (
        "run `make monitoring-k8s` after changing rules.yml"
    )
