"""Settings that cannot work stop the gateway at start-up, not on the first request."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway import create_app
from gateway.config import DEFAULT_PUBLIC_ROUTES
from gateway.nginx.render import edge_limit_values
from gateway.tests.conftest import make_env
from shared.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "override",
    [
        {"GATEWAY_READ_TIMEOUT": 0},
        {"GATEWAY_RATE_LIMIT_USER": "lots"},
        {"GATEWAY_REVOCATION_TTL_SECONDS": 60},
        {"GATEWAY_CORS_ORIGINS": ["app.example.com"]},
        {"GATEWAY_ROUTES": [{"prefix": "api", "upstream": "x", "url": "http://x"}]},
    ],
)
def test_an_unusable_setting_is_refused_at_start_up(override):
    with pytest.raises(ConfigError):
        create_app({"TESTING": True, **override}, env=make_env())


def test_upstreams_and_timeouts_come_from_the_environment():
    app = create_app(
        {"TESTING": True},
        env=make_env(
            ORDERS_URL="http://orders.internal:9002/",
            GATEWAY_CONNECT_TIMEOUT="0.25",
            GATEWAY_RATE_LIMIT_IP="5/second",
        ),
    )

    table = app.extensions["route_table"]
    assert table.match("GET", "/api/v1/orders/1").route.url == "http://orders.internal:9002"
    assert table.match("GET", "/api/v1/ordersX") is None
    products = table.match("GET", "/api/v1/products")
    assert (products.route.url, products.public) == ("http://orders.internal:9002", True)
    assert table.match("POST", "/api/v1/products").public is False
    assert app.extensions["upstream_client"].timeout == (0.25, 15.0)
    assert app.config["GATEWAY_PUBLIC_ROUTES"] == list(DEFAULT_PUBLIC_ROUTES)


def test_the_compose_edge_limits_at_the_gateways_rates():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    gateway = compose["services"]["gateway"]["environment"]
    edge = compose["services"]["edge"]["environment"]

    expected = edge_limit_values(gateway)

    assert {name: str(edge[name]) for name in expected} == expected


def test_the_edge_limits_are_the_gateways_in_nginx_terms():
    values = edge_limit_values(
        {"GATEWAY_RATE_LIMIT_IP": "10/second", "GATEWAY_RATE_LIMIT_USER": "100/minute;1000/hour"}
    )

    # A burst of the limit, then its long-run rate (of several, the slowest).
    assert values == {
        "EDGE_IP_RATE": "600r/m",
        "EDGE_IP_BURST": "9",
        "EDGE_CALLER_RATE": "17r/m",
        "EDGE_CALLER_BURST": "999",
        "EDGE_RETRY_AFTER": "4",
    }


def ingress_routes(path: str, rule: dict) -> bool:
    """True when an Ingress path rule sends `path` to its backend."""
    if rule["pathType"] == "Exact":
        return path == rule["path"]
    prefix = rule["path"].rstrip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def test_the_ingress_sends_the_public_api_to_the_gateway_but_not_its_metrics():
    manifests = yaml.safe_load_all((ROOT / "deploy/k8s/gateway.yaml").read_text())
    (ingress,) = [doc for doc in manifests if doc and doc["kind"] == "Ingress"]
    rules = [rule for host in ingress["spec"]["rules"] for rule in host["http"]["paths"]]

    def routed(path: str) -> bool:
        return any(ingress_routes(path, rule) for rule in rules)

    for public in (
        "/api/v1/orders/1",
        "/.well-known/jwks.json",
        "/docs/",
        "/openapi.json",
        "/asyncapi.json",
    ):
        assert routed(public), public
    for private in ("/metrics", "/_auth/verify"):
        assert not routed(private), private


def test_a_day_long_token_with_a_17_minute_revocation_window_stops_the_gateway():
    env = make_env(
        AUTH_ACCESS_TOKEN_TTL_SECONDS=str(24 * 3600), GATEWAY_REVOCATION_TTL_SECONDS=str(17 * 60)
    )
    with pytest.raises(ConfigError, match="revoked token would work again"):
        create_app({"TESTING": True}, env=env)


def test_the_gateway_refuses_tokens_issued_for_longer_than_the_configured_lifetime():
    app = create_app({"TESTING": True}, env=make_env(AUTH_ACCESS_TOKEN_TTL_SECONDS="600"))
    assert app.extensions["token_verifier"].max_lifetime == 600
