"""The container and Kubernetes files describe the suite an operator expects to run.

Checked offline: there is no Docker engine or cluster here. hadolint and `compose config`
run in test_container_lint.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
SERVICES = ("auth", "orders", "notifications")
DOCKERFILES = [ROOT / "services" / s / "Dockerfile" for s in SERVICES] + [
    ROOT / "gateway" / "Dockerfile"
]

# Every process of the suite and the command that starts it (the web ones: the image's CMD).
PROCESSES = {
    "auth": None,
    "auth-relay": ["python", "-m", "services.auth.worker", "relay"],
    "orders": None,
    "orders-relay": ["python", "-m", "services.orders.worker", "relay"],
    "orders-consumer": ["python", "-m", "services.orders.worker", "consume"],
    "notifications": None,
    "notifications-consumer": ["python", "-m", "services.notifications.worker", "consume"],
    "notifications-delivery": ["python", "-m", "services.notifications.worker", "deliver"],
    "gateway": None,
    "gateway-worker": ["python", "-m", "gateway.worker"],
}


# -- Dockerfiles --------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_each_image_is_slim_multi_stage_non_root_and_health_checked(path: Path) -> None:
    text = path.read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)

    assert stages == ["python:3.11-slim", "python:3.11-slim"]
    assert users and not users[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*\n?.*healthcheck\.py", text, re.MULTILINE)
    assert '\nENTRYPOINT ["/app/docker/entrypoint.sh"]' in text
    assert '\nCMD ["web"]' in text


# -- docker-compose.yml -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as YAML (anchors and merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_every_process_of_the_suite(compose: dict[str, Any]) -> None:
    services = compose["services"]

    for name, command in PROCESSES.items():
        assert name in services, name
        assert services[name].get("command") == command, name
    for infrastructure in ("rabbitmq", "redis", "mailpit", "edge"):
        assert infrastructure in services
    for service in SERVICES:
        database = services[f"{service}-db"]
        assert database["image"].startswith("postgres:")
        assert any(str(v).endswith("/var/lib/postgresql/data") for v in database["volumes"])


def test_compose_starts_nothing_before_what_it_needs_is_healthy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            if services[dependency].get("restart") == "no":
                # A one-shot step (the broker users): what follows waits for it to succeed.
                assert rule == {"condition": "service_completed_successfully"}, (name, dependency)
                continue
            assert rule == {"condition": "service_healthy"}, (name, dependency)
            healthy = "healthcheck" in services[dependency] or "build" in services[dependency]
            assert healthy, f"{dependency} has no healthcheck, {name} would wait forever"


def test_compose_secrets_have_no_defaults() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    references = re.findall(r"\$\{([A-Z_]*(?:PASSWORD|SECRET)[A-Z_]*)(:[?-][^}]*)?\}", text)

    assert references
    for name, rule in references:
        # Required (`:?`), or empty (`:-`), which turns the optional bootstrap admin off.
        assert rule.startswith(":?") or rule == ":-", name


def test_compose_gives_workers_a_metrics_port_and_probes_it(compose: dict[str, Any]) -> None:
    for name, command in PROCESSES.items():
        if command is None:
            continue
        service = compose["services"][name]
        assert service["environment"]["METRICS_PORT"] == "9100", name
        assert service["healthcheck"]["test"][-1] == "9100", name


def test_compose_fills_every_placeholder_of_the_edge_template(compose: dict[str, Any]) -> None:
    from gateway.nginx.render import placeholders

    edge = compose["services"]["edge"]
    mounted = [volume.split(":")[0] for volume in edge["volumes"]]

    assert "./gateway/nginx/default.conf.template" in mounted
    assert placeholders() <= set(edge["environment"])


# -- deploy/k8s ---------------------------------------------------------------------------


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """The documents of one manifest file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    """deploy/k8s/kustomization.yaml."""
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def resources(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource `kubectl apply -k deploy/k8s` creates."""
    return [doc for name in kustomization["resources"] for doc in load_manifests(K8S / name)]


@pytest.fixture(scope="module")
def secrets() -> dict[str, dict[str, str]]:
    """The Secrets of secrets.example.yaml, by name."""
    examples = load_manifests(K8S / "secrets.example.yaml")
    return {doc["metadata"]["name"]: doc["stringData"] for doc in examples}


def of_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one kind, by name."""
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def test_every_manifest_is_valid_kubernetes(resources: list[dict[str, Any]]) -> None:
    examples = load_manifests(K8S / "secrets.example.yaml")
    version = kubernetes_validate.latest_version()

    for resource in resources + examples:
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_kustomization_applies_every_manifest_but_never_the_secrets(
    kustomization: dict[str, Any],
) -> None:
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == manifests - {"secrets.example.yaml"}


def test_every_process_runs_at_least_twice_with_probes_and_limits(
    resources: list[dict[str, Any]],
) -> None:
    deployments = of_kind(resources, "Deployment")

    assert set(deployments) == set(PROCESSES)
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] >= 2, name
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        expected_ready = "/readyz" if PROCESSES[name] is None else "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == expected_ready, name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        expected_args = ["web"] if PROCESSES[name] is None else PROCESSES[name]
        assert container["args"] == expected_args, name


def test_every_deployment_has_a_disruption_budget_and_web_ones_scale(
    resources: list[dict[str, Any]],
) -> None:
    deployments = of_kind(resources, "Deployment")
    budgets = of_kind(resources, "PodDisruptionBudget")
    autoscalers = of_kind(resources, "HorizontalPodAutoscaler")

    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            b
            for b in budgets.values()
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, name
    for name in ("auth", "orders", "notifications", "gateway"):
        assert autoscalers[name]["spec"]["minReplicas"] >= 2
    for autoscaler in autoscalers.values():
        assert autoscaler["spec"]["scaleTargetRef"]["name"] in deployments


def test_every_service_has_a_migration_job_and_web_pods_do_not_migrate(
    resources: list[dict[str, Any]],
) -> None:
    jobs = of_kind(resources, "Job")
    deployments = of_kind(resources, "Deployment")

    for service in SERVICES:
        container = jobs[f"{service}-migrate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["migrate"]
        web_env = deployments[service]["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "RUN_MIGRATIONS", "value": "0"} in web_env


def test_every_referenced_config_and_secret_exists(
    resources: list[dict[str, Any]], secrets: dict[str, dict[str, str]]
) -> None:
    config_maps = of_kind(resources, "ConfigMap")
    pods = [d["spec"]["template"]["spec"] for d in of_kind(resources, "Deployment").values()]
    pods += [j["spec"]["template"]["spec"] for j in of_kind(resources, "Job").values()]

    for pod in pods:
        for source in pod["containers"][0]["envFrom"]:
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps
            else:
                assert source["secretRef"]["name"] in secrets
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets


def test_secret_placeholders_are_refused_by_the_services(
    secrets: dict[str, dict[str, str]],
) -> None:
    from shared.config import ConfigError, Env

    env = Env({"APP_ENV": "production", **secrets["auth-secrets"]})

    with pytest.raises(ConfigError, match="placeholder"):
        env.amqp_url()
    with pytest.raises(ConfigError, match="placeholder"):
        env.database_url("auth")


def test_each_service_connects_to_the_broker_as_its_own_user(
    resources: list[dict[str, Any]], secrets: dict[str, dict[str, str]]
) -> None:
    from shared.broker_users import USERS

    for name, deployment in of_kind(resources, "Deployment").items():
        service = deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        urls = [
            secrets[s["secretRef"]["name"]]["AMQP_URL"]
            for s in sources
            if "secretRef" in s and "AMQP_URL" in secrets[s["secretRef"]["name"]]
        ]
        assert [re.match(r"amqp://([^:]+):", url).group(1) for url in urls] == [service], name
    # The Job creating the users is given every password it sets.
    assert {u.password_variable() for u in USERS} <= set(secrets["broker-users"])


def test_compose_keeps_the_edges_token_cache_in_memory(compose: dict[str, Any]) -> None:
    # The cache is keyed on whole bearer tokens, and nginx writes each key into its file.
    edge = compose["services"]["edge"]
    memory = [mount.split(":")[0] for mount in edge["tmpfs"]]

    assert any(edge["environment"]["EDGE_CACHE_DIR"].startswith(f"{m}/") for m in memory)
