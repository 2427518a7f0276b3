"""Who can open a connection to whom, read from the deployment files: the Kubernetes
NetworkPolicies (evaluated the way the API defines them) and the compose networks.

Offline, like the other deployment-file checks: no cluster and no Docker engine here.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from .conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
NAMESPACE = "flask-suite"
SERVICES = ("auth", "orders", "notifications")
WEB_PORTS = {"auth": 8001, "orders": 8002, "notifications": 8003, "gateway": 8080}

# -- Kubernetes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels) or a plain address outside the cluster."""

    name: str
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""


def outside(name: str, namespace: str, **labels: str) -> Endpoint:
    return Endpoint(name, namespace, labels)


# What the suite's pods talk to, labelled as network-policies.yaml's header asks.
DATABASES = {
    s: outside(f"{s}-db", "databases", **{"app.kubernetes.io/name": f"{s}-db"}) for s in SERVICES
}
BROKER = outside("rabbitmq", "rabbitmq", **{"app.kubernetes.io/name": "rabbitmq"})
REDIS = outside("redis", "redis", **{"app.kubernetes.io/name": "redis"})
DNS = outside("kube-dns", "kube-system", **{"k8s-app": "kube-dns"})
INGRESS = outside(
    "ingress-controller", "ingress-nginx", **{"app.kubernetes.io/name": "ingress-nginx"}
)
SOMEONE_ELSE = outside("another-app", "default", app="another")
PUBLIC = Endpoint("public address", ip="203.0.113.7")
METADATA = Endpoint("cloud metadata", ip="169.254.169.254")


def load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def applied() -> list[dict[str, Any]]:
    """Everything the kustomization applies."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in load(name)]


def suite_pods() -> dict[str, Endpoint]:
    """Every pod template of the suite (Deployments and Jobs), by workload name."""
    return {
        doc["metadata"]["name"]: Endpoint(
            doc["metadata"]["name"], NAMESPACE, doc["spec"]["template"]["metadata"]["labels"]
        )
        for doc in applied()
        if doc["kind"] in ("Deployment", "Job")
    }


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector's verdict (matchLabels and matchExpressions; {} selects everything)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values", []),
        )
        present = key in labels
        verdict = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not verdict:
            return False
    return True


def peer_matches(peer: Mapping[str, Any], endpoint: Endpoint) -> bool:
    if "ipBlock" in peer:
        if not endpoint.ip:
            return False
        address = ipaddress.ip_address(endpoint.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if not endpoint.namespace:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": endpoint.namespace}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif endpoint.namespace != NAMESPACE:
        return False  # a podSelector alone means pods of the policy's own namespace
    return selects(peer.get("podSelector", {}), endpoint.labels)


def rule_allows(rule: Mapping[str, Any], peers_key: str, other: Endpoint, port: int) -> bool:
    peers = rule.get(peers_key)
    ports = rule.get("ports")
    peer_ok = not peers or any(peer_matches(peer, other) for peer in peers)
    port_ok = not ports or any(p.get("port") in (None, port) for p in ports)
    return peer_ok and port_ok


def allowed(
    policies: list[dict[str, Any]], direction: str, pod: Endpoint, other: Endpoint, port: int
) -> bool:
    """Whether `pod`'s policies let this connection out (Egress) or in (Ingress)."""
    if pod.namespace != NAMESPACE:
        return True  # not ours to restrict
    isolating = [
        p["spec"]
        for p in policies
        if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not isolating:
        return True
    key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    return any(
        rule_allows(rule, peers, other, port) for spec in isolating for rule in spec.get(key, [])
    )


def reaches(policies: list[dict[str, Any]], source: Endpoint, target: Endpoint, port: int) -> bool:
    """A TCP connection from source to target:port gets through both ends' policies."""
    return allowed(policies, "Egress", source, target, port) and allowed(
        policies, "Ingress", target, source, port
    )


@pytest.fixture(scope="module")
def policies() -> list[dict[str, Any]]:
    return [doc for doc in applied() if doc["kind"] == "NetworkPolicy"]


@pytest.fixture(scope="module")
def pods() -> dict[str, Endpoint]:
    return suite_pods()


def service_of(pod: Endpoint) -> str:
    return str(pod.labels["app.kubernetes.io/name"])


def test_every_pod_is_denied_by_default(policies: list[dict[str, Any]]) -> None:
    deny_all = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]

    assert deny_all


def test_each_services_pods_reach_its_own_database_and_no_other(
    policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    for name, pod in pods.items():
        for service, database in DATABASES.items():
            expected = service_of(pod) == service
            assert reaches(policies, pod, database, 5432) is expected, (name, database.name)


def test_only_the_gateway_reaches_redis(
    policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    reaching = {name for name, pod in pods.items() if reaches(policies, pod, REDIS, 6379)}

    assert reaching == {"gateway", "gateway-worker"}


def test_every_process_reaches_the_broker_and_dns(
    policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    for name, pod in pods.items():
        assert reaches(policies, pod, DNS, 53), name
        if name == "broker-users":
            assert reaches(policies, pod, BROKER, 15672)
            assert not reaches(policies, pod, BROKER, 5672)
        else:
            assert reaches(policies, pod, BROKER, 5672), name
            assert not reaches(policies, pod, BROKER, 15672), name


def test_from_outside_only_the_gateway_is_reachable_through_the_ingress_controller(
    policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    assert reaches(policies, INGRESS, pods["gateway"], 8080)
    for service in SERVICES:
        assert not reaches(policies, INGRESS, pods[service], WEB_PORTS[service]), service
    for name, pod in pods.items():
        for port in (*WEB_PORTS.values(), 9100):
            assert not reaches(policies, SOMEONE_ELSE, pod, port), (name, port)


def test_the_gateway_reaches_each_service_and_services_only_auths_keys(
    policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    for service in SERVICES:
        assert reaches(policies, pods["gateway"], pods[service], WEB_PORTS[service])
    assert reaches(policies, pods["orders"], pods["auth"], 8001)  # the JWKS
    assert reaches(policies, pods["notifications"], pods["auth"], 8001)
    assert not reaches(policies, pods["orders"], pods["notifications"], 8003)
    assert not reaches(policies, pods["notifications"], pods["orders"], 8002)
    assert not reaches(policies, pods["auth"], pods["orders"], 8002)
    assert not reaches(policies, pods["orders-relay"], pods["gateway"], 8080)
    assert not reaches(policies, pods["orders-consumer"], pods["auth"], 8001)


def test_only_the_delivery_worker_leaves_the_cluster_and_never_for_private_addresses(
    policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    leaving = {name for name, pod in pods.items() if reaches(policies, pod, PUBLIC, 443)}

    assert leaving == {"notifications-delivery"}
    assert not reaches(policies, pods["notifications-delivery"], METADATA, 80)


def test_the_check_sees_a_database_policy_that_selects_every_pod(
    policies: list[dict[str, Any]], pods: dict[str, Endpoint]
) -> None:
    # The checker itself: one plausible slip (a database rule for all pods) must show.
    slipped = copy.deepcopy(policies)
    for policy in slipped:
        if policy["metadata"]["name"] == "auth-database":
            policy["spec"]["podSelector"] = {}

    assert not reaches(policies, pods["orders"], DATABASES["auth"], 5432)
    assert reaches(slipped, pods["orders"], DATABASES["auth"], 5432)


# -- docker-compose.yml -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def networks_of(service: Mapping[str, Any]) -> set[str]:
    """A compose service's networks (none listed: the project's default network)."""
    listed = service.get("networks", ["default"])
    return set(listed if isinstance(listed, list) else listed.keys())


def compose_peers(compose: Mapping[str, Any], target: str) -> set[str]:
    """The containers that share a network with `target` (so can open connections to it)."""
    wanted = networks_of(compose["services"][target])
    return {
        name
        for name, service in compose["services"].items()
        if name != target and networks_of(service) & wanted
    }


def processes_of(compose: Mapping[str, Any], service: str) -> set[str]:
    return {
        name
        for name in compose["services"]
        if name == service or (name.startswith(f"{service}-") and not name.endswith("-db"))
    }


def test_compose_a_service_reaches_its_own_database_and_no_other(compose: dict[str, Any]) -> None:
    for service in SERVICES:
        assert compose_peers(compose, f"{service}-db") == processes_of(compose, service), service
        assert compose["networks"][f"{service}-db"].get("internal") is True


def test_compose_only_the_gateway_reaches_redis(compose: dict[str, Any]) -> None:
    assert compose_peers(compose, "redis") == {"gateway", "gateway-worker"}


def test_compose_the_edge_reaches_only_the_gateway_and_its_fast_path_services(
    compose: dict[str, Any],
) -> None:
    edge_networks = networks_of(compose["services"]["edge"])
    reachable = {
        name
        for name, service in compose["services"].items()
        if name != "edge" and networks_of(service) & edge_networks
    }

    assert reachable == {"gateway", "orders", "notifications"}


def url_user(service: Mapping[str, Any], variable: str) -> str | None:
    """The user name in a URL setting (not urlsplit: the `${VAR:?message}` holds a `?`)."""
    url = service.get("environment", {}).get(variable)
    found = re.match(r"^[a-z]+://([^:@/]+):", url) if url else None
    return found.group(1) if found else None


def test_compose_each_process_uses_its_own_broker_user_and_only_the_gateway_redis(
    compose: dict[str, Any],
) -> None:
    users = {name: url_user(service, "AMQP_URL") for name, service in compose["services"].items()}
    redis_users = {
        name: url_user(service, "REDIS_URL")
        for name, service in compose["services"].items()
        if "REDIS_URL" in service.get("environment", {})
    }

    for service in (*SERVICES, "gateway"):
        for process in processes_of(compose, service):
            assert users[process] == service, process
    assert redis_users == {"gateway": "gateway", "gateway-worker": "gateway"}
    talking = {name for name, user in users.items() if user} | {"broker-users"}
    assert compose_peers(compose, "rabbitmq") == talking - {"notifications-delivery"}


def test_compose_the_auth_relay_mounts_no_signing_keys(compose: dict[str, Any]) -> None:
    relay = compose["services"]["auth-relay"]

    assert not any("keys" in str(volume) for volume in relay.get("volumes", []))


def test_k8s_the_auth_relay_mounts_no_signing_keys(pods: dict[str, Endpoint]) -> None:
    relay = next(
        d for d in applied() if d["kind"] == "Deployment" and d["metadata"]["name"] == "auth-relay"
    )
    volumes = relay["spec"]["template"]["spec"].get("volumes", [])

    assert not any(
        volume.get("secret", {}).get("secretName") == "auth-signing-keys" for volume in volumes
    )
