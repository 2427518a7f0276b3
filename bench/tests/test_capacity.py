"""deploy/k8s follows the capacity model (bench/capacity.py), and docs/capacity.md shows what
the model computes from the committed benchmark results."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from typing import Any

import pytest
import yaml

from bench import capacity

BASE = capacity.ROOT / "deploy" / "k8s" / "base"
PROD = capacity.ROOT / "deploy" / "k8s" / "overlays" / "prod"


def _objects(documents: Iterable[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents if d and "metadata" in d}


@pytest.fixture(scope="module")
def base() -> dict[tuple[str, str], dict[str, Any]]:
    docs: list[Any] = []
    for path in sorted(BASE.glob("*.yaml")):
        docs += yaml.safe_load_all(path.read_text())
    return _objects(docs)


@pytest.fixture(scope="module")
def prod() -> dict[tuple[str, str], dict[str, Any]]:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(PROD)], capture_output=True, text=True, check=True
    ).stdout
    return _objects(yaml.safe_load_all(rendered))


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return capacity.current()


def _millicores(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def _cpu_request(deployment: dict[str, Any]) -> int:
    return _millicores(
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    )


def _hpa_for(objects: dict[tuple[str, str], dict[str, Any]], deployment: str) -> dict[str, Any]:
    [hpa] = [
        o
        for (kind, _), o in objects.items()
        if kind == "HorizontalPodAutoscaler" and o["spec"]["scaleTargetRef"]["name"] == deployment
    ]
    return hpa


def _target(hpa: dict[str, Any]) -> int:
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    return int(metric["resource"]["target"]["averageUtilization"])


@pytest.mark.parametrize("label", list(capacity.KINDS))
def test_base_requests_and_hpa_targets_are_the_models(
    base: dict[tuple[str, str], dict[str, Any]], label: str
) -> None:
    kind = capacity.KINDS[label]
    deployment = base[("Deployment", kind.deployment)]
    assert _cpu_request(deployment) == kind.cpu_request_m
    hpa = _hpa_for(base, kind.deployment)
    assert _target(hpa) == kind.hpa_target
    assert hpa["spec"]["minReplicas"] >= kind.min_replicas


@pytest.mark.parametrize("label", list(capacity.KINDS))
def test_prod_scales_to_the_models_replicas_at_10000_orders_per_second(
    prod: dict[tuple[str, str], dict[str, Any]], model: dict[str, Any], label: str
) -> None:
    kind = capacity.KINDS[label]
    assert _cpu_request(prod[("Deployment", kind.deployment)]) == kind.cpu_request_m
    hpa = _hpa_for(prod, kind.deployment)
    assert _target(hpa) == kind.hpa_target
    needed = model["per_order"].get(label, {}).get("replicas", {}).get(10_000, kind.min_replicas)
    assert hpa["spec"]["maxReplicas"] >= needed


def test_the_document_shows_what_the_model_computes(model: dict[str, Any]) -> None:
    assert capacity.markdown(model) in capacity.MARKDOWN.read_text(), (
        "docs/capacity.md is stale: run `python -m bench.capacity`"
    )


def test_cores_follow_from_cpu_seconds_and_requests() -> None:
    # One phase, one process: 0.5 of a core for 10 s over 1,000 requests is 5 ms each,
    # i.e. 5 cores per 1,000/s; at a 60% target of 500m, 17 pods for 1,000/s.
    full = {
        "cpu": {"p": {"seconds": 10.0, "shares": {"x.worker": 0.6}}},
    }
    assert capacity._ms(full, "p", "x.worker", 1_000, idle=0.1) == pytest.approx(5.0)
    assert capacity.replicas(capacity.Kind("x", 500, 60, 2), 5.0) == 17
    assert capacity.replicas(capacity.Kind("x", 500, 60, 2), 0.1) == 2
