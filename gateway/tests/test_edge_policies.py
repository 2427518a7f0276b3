"""Rate limits, CORS and the gateway's own endpoints, in one process (memory storage)."""

from __future__ import annotations

import re
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.openapi import SpecCache, merge_specs
from gateway.tests.conftest import bearer
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_per_ip_limit_answers_429_with_retry_after(make_gateway, upstream):
    client = make_gateway(GATEWAY_RATE_LIMIT_IP="3/minute").test_client()

    responses = [client.get("/api/v1/orders", headers=bearer()) for _ in range(4)]

    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    refused = responses[-1]
    assert refused.mimetype == "application/problem+json"
    # Sliding window: the rest of this minute, then until its count has faded enough.
    assert 1 <= int(refused.headers["Retry-After"]) <= 120
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Reset"] == refused.headers["Retry-After"]
    assert len(upstream.received) == 3


def test_only_a_refusal_carries_retry_after(make_gateway):
    client = make_gateway().test_client()

    response = client.get("/api/v1/orders", headers=bearer())

    assert response.status_code == 200
    assert "Retry-After" not in response.headers
    assert response.headers["RateLimit-Limit"]


def test_the_per_user_limit_counts_each_user_apart(make_gateway):
    client = make_gateway(GATEWAY_RATE_LIMIT_USER="2/minute").test_client()

    alice = [client.get("/api/v1/orders", headers=bearer("alice")).status_code for _ in range(3)]
    bob = client.get("/api/v1/orders", headers=bearer("bob")).status_code

    assert alice == [200, 200, 429]
    assert bob == 200


def test_forged_tokens_are_throttled_per_ip_too(make_gateway):
    client = make_gateway(GATEWAY_RATE_LIMIT_IP="2/minute").test_client()

    statuses = [
        client.get("/api/v1/orders", headers={"Authorization": "Bearer forged"}).status_code
        for _ in range(3)
    ]

    assert statuses == [401, 401, 429]


def test_probes_are_never_throttled(make_gateway):
    client = make_gateway(GATEWAY_RATE_LIMIT_IP="1/minute").test_client()

    assert {client.get("/healthz").status_code for _ in range(3)} == {200}


ORIGIN = "https://app.example.com"


def test_a_preflight_from_an_allowed_origin_is_answered_by_the_gateway(make_gateway, upstream):
    client = make_gateway(GATEWAY_CORS_ORIGINS=[ORIGIN]).test_client()

    response = client.options(
        "/api/v1/orders",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert upstream.received == []


def test_a_preflight_from_another_origin_is_refused(make_gateway):
    client = make_gateway(GATEWAY_CORS_ORIGINS=[ORIGIN]).test_client()

    response = client.options(
        "/api/v1/orders",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )

    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers


def test_responses_to_an_allowed_origin_expose_the_useful_headers(make_gateway):
    client = make_gateway(GATEWAY_CORS_ORIGINS=[ORIGIN]).test_client()

    allowed = client.get("/api/v1/orders", headers={**bearer(), "Origin": ORIGIN})
    other = client.get("/api/v1/orders", headers={**bearer(), "Origin": "https://evil.example"})

    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers["Vary"]


def spec(schema_name: str, path: str) -> dict:
    return {
        "openapi": "3.1.0",
        "paths": {
            path: {
                "get": {
                    "security": [{"bearerAuth": []}],
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": f"#/components/schemas/{schema_name}"}
                                }
                            }
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {schema_name: {"type": "object"}, "Error": {"type": "object"}},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "tags": [{"name": schema_name}],
    }


def test_merged_spec_prefixes_components_so_services_cannot_collide():
    merged = merge_specs(
        {"orders": spec("Order", "/api/v1/orders"), "auth": spec("User", "/api/v1/auth/me")},
        unavailable=[],
    )

    schemas = merged["components"]["schemas"]
    assert {"orders.Order", "orders.Error", "auth.User", "auth.Error"} <= set(schemas)
    operation = merged["paths"]["/api/v1/orders"]["get"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/orders.Order"
    assert operation["security"] == [{"orders.bearerAuth": []}]
    assert "orders.bearerAuth" in merged["components"]["securitySchemes"]


def test_spec_cache_tolerates_a_down_service_and_fetches_once_per_ttl():
    calls: list[str] = []

    def fetch(url: str) -> dict:
        calls.append(url)
        if "orders" in url:
            raise requests.ConnectionError("down")
        return spec("User", "/api/v1/auth/me")

    cache = SpecCache({"auth": "http://auth", "orders": "http://orders"}, fetch, ttl_seconds=60)

    first, second = cache.merged(), cache.merged()

    assert first == second
    assert "/api/v1/auth/me" in first["paths"]
    assert first["x-unavailable"] == ["orders"]
    assert len(calls) == 2


def test_openapi_and_docs_are_served_by_the_gateway(make_gateway, upstream):
    upstream.spec = spec("Order", "/api/v1/orders")
    client = make_gateway().test_client()

    document = client.get("/openapi.json")
    with client.get("/docs/") as docs:
        page = docs.get_data()
    with client.get("/docs/swagger-ui-bundle.js") as asset:
        assert asset.status_code == 200
        assert "script-src 'self'" in asset.headers["Content-Security-Policy"]
    with client.get("/docs/swagger-initializer.js") as start:
        initializer = start.get_data(as_text=True)

    assert document.status_code == 200
    assert "/api/v1/orders" in document.json["paths"]
    assert docs.status_code == 200
    assert 'url: "/openapi.json"' in initializer
    # No call home: Swagger UI's spec validator badge is off.
    assert "validatorUrl: null" in initializer
    # Only the gateway's own files, and no inline script for the policy to make an exception for.
    policy = dict(
        d.strip().split(" ", 1) for d in docs.headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert re.findall(rb"<script[^>]*>", page) == [
        b'<script src="/docs/swagger-ui-bundle.js">',
        b'<script src="/docs/swagger-initializer.js">',
    ]


def test_the_event_catalogue_is_served_as_the_checked_in_asyncapi_document(make_gateway):
    client = make_gateway().test_client()

    response = client.get("/asyncapi.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    checked_in = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert response.json == checked_in
    assert "user.registered" in response.json["channels"]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return 0.0


def test_metrics_count_the_gateways_requests_and_its_upstream_calls(make_gateway):
    client = make_gateway().test_client()
    down = make_gateway(f"http://127.0.0.1:{free_port()}").test_client()
    before = client.get("/metrics").text

    assert client.get("/api/v1/orders", headers=bearer()).status_code == 200
    assert down.get("/api/v1/orders", headers=bearer()).status_code == 503
    after = client.get("/metrics").text

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("http_requests_total", service="gateway", status="200") >= 1
    assert grew("http_requests_total", service="gateway", status="503") >= 1
    assert grew("gateway_upstream_duration_seconds_count", upstream="orders", status="200") == 1
    assert grew("gateway_upstream_failures_total", upstream="orders", kind="connection") == 1


def test_readyz_reports_each_upstream(make_gateway, upstream):
    ready = make_gateway().test_client().get("/readyz")
    down = make_gateway(f"http://127.0.0.1:{free_port()}").test_client().get("/readyz")

    assert ready.status_code == 200
    # Reported, not required: the gateway stays in rotation and answers 503 per request.
    assert down.status_code == 200
    assert down.json["status"] == "degraded"
    assert down.json["checks"]["orders"] == "unavailable"


def test_options_without_a_token_gets_the_services_own_allow_header(make_gateway, upstream):
    client = make_gateway().test_client()

    response = client.options("/api/v1/orders/o-1")

    # The service's router knows the path's methods; the gateway forwards the question.
    assert response.status_code == 200
    assert [(r.method, r.path) for r in upstream.received] == [("OPTIONS", "/api/v1/orders/o-1")]
