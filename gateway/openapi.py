"""`/openapi.json`: the services' specs merged into one; `/docs`: Swagger UI over it.

`/asyncapi.json` is the events' counterpart: the AsyncAPI document generated from the
contract catalogue that every service is built with (docs/asyncapi.yaml holds the same).

Each service publishes its own spec (flask-smorest). The gateway fetches them, caches
each for `GATEWAY_OPENAPI_TTL_SECONDS`, and merges: paths as they are (they already carry
the service prefix), component names prefixed with the service (`orders.Order`), every
`$ref` rewritten to match. A service that cannot be reached keeps its last good spec, or
is listed under `x-unavailable` until it answers. The page at /docs is gateway.docs_page.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from flask import Flask, Response, current_app, json

from gateway import docs_page
from shared.contracts import asyncapi
from shared.errors import PROBLEM_CONTENT_TYPE

log = logging.getLogger(__name__)
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

REF_PREFIX = "#/components/"
# What the gateway itself can answer on any route, before or instead of the service.
GATEWAY_ERRORS = {
    "429": "Too many requests from this caller; wait for Retry-After.",
    "503": "The service behind this route cannot be reached now.",
    "504": "The service behind this route did not answer in time.",
}

Fetch = Callable[[str], Mapping[str, Any]]


def prefix_refs(node: Any, service: str) -> Any:
    """A copy of `node` with every local component `$ref` renamed to `<service>.<name>`."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                kind, _, name = value[len(REF_PREFIX) :].partition("/")
                out[key] = f"{REF_PREFIX}{kind}/{service}.{name}"
            elif key == "security" and isinstance(value, list):
                # Security requirements name their scheme by key, not by $ref.
                out[key] = [
                    {f"{service}.{scheme}": scopes for scheme, scopes in requirement.items()}
                    if isinstance(requirement, dict)
                    else requirement
                    for requirement in value
                ]
            else:
                out[key] = prefix_refs(value, service)
        return out
    if isinstance(node, list):
        return [prefix_refs(item, service) for item in node]
    return node


def merge_specs(
    specs: Mapping[str, Mapping[str, Any]], *, unavailable: list[str]
) -> dict[str, Any]:
    """One OpenAPI document from several services' documents."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Flask microservices suite",
            "version": "v1",
            "description": "Every service's API as served through the gateway.",
        },
        "servers": [{"url": "/"}],
        "paths": {},
        "components": {},
        "tags": [],
    }
    seen_tags: set[str] = set()
    for service, spec in sorted(specs.items()):
        renamed = prefix_refs(spec, service)
        for path, item in renamed.get("paths", {}).items():
            if path in merged["paths"]:
                log.warning("path published twice", extra={"path": path, "service": service})
                continue
            merged["paths"][path] = item
        for kind, entries in renamed.get("components", {}).items():
            if isinstance(entries, dict):
                target = merged["components"].setdefault(kind, {})
                for name, value in entries.items():
                    target[f"{service}.{name}"] = value
        for tag in renamed.get("tags", []):
            if isinstance(tag, dict) and tag.get("name") not in seen_tags:
                seen_tags.add(str(tag.get("name")))
                merged["tags"].append(tag)
    _add_gateway_errors(merged)
    if unavailable:
        merged["x-unavailable"] = sorted(unavailable)
    return merged


def _add_gateway_errors(merged: dict[str, Any]) -> None:
    """Document the gateway's own problem answers (rate limit, upstream down) everywhere."""
    components = merged["components"]
    components.setdefault("schemas", {})["gateway.Problem"] = {
        "type": "object",
        "description": "An RFC 9457 problem document answered by the gateway itself.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "request_id": {"type": ["string", "null"]},
        },
    }
    responses = components.setdefault("responses", {})
    for status, description in GATEWAY_ERRORS.items():
        responses[f"gateway.{status}"] = {
            "description": description,
            "content": {
                PROBLEM_CONTENT_TYPE: {"schema": {"$ref": f"{REF_PREFIX}schemas/gateway.Problem"}}
            },
        }
    for item in merged["paths"].values():
        for method, spec_operation in item.items():
            if method in HTTP_METHODS and isinstance(spec_operation, dict):
                documented = spec_operation.setdefault("responses", {})
                for status in GATEWAY_ERRORS:
                    documented.setdefault(
                        status, {"$ref": f"{REF_PREFIX}responses/gateway.{status}"}
                    )


class SpecCache:
    """Per-process cache of each upstream's spec; a failed fetch keeps the last good one."""

    def __init__(self, upstreams: Mapping[str, str], fetch: Fetch, ttl_seconds: float) -> None:
        self.upstreams = dict(upstreams)
        self.fetch = fetch
        self.ttl_seconds = ttl_seconds
        self._specs: dict[str, Mapping[str, Any]] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def merged(self) -> dict[str, Any]:
        """The merged document, refetching specs older than the TTL."""
        with self._lock:  # one refetch at a time, not one per concurrent request
            now = time.monotonic()
            unavailable = []
            for service, base_url in self.upstreams.items():
                if now - self._fetched_at.get(service, float("-inf")) >= self.ttl_seconds:
                    try:
                        self._specs[service] = self.fetch(f"{base_url}/openapi.json")
                    except (requests.RequestException, ValueError) as exc:
                        log.warning(
                            "cannot fetch a service's spec",
                            extra={"service": service, "error": str(exc)},
                        )
                    # Also after a failure: a down service is not asked on every request.
                    self._fetched_at[service] = now
                if service not in self._specs:
                    unavailable.append(service)
            specs = copy.deepcopy(self._specs)
        return merge_specs(specs, unavailable=unavailable)


def http_fetcher(session: requests.Session, timeout: tuple[float, float]) -> Fetch:
    """Fetch a JSON document with the gateway's timeouts."""

    def fetch(url: str) -> Mapping[str, Any]:
        response = session.get(url, timeout=timeout)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError("spec is not a JSON object")
        return document

    return fetch


def openapi_view() -> Response:
    """The merged OpenAPI document."""
    cache: SpecCache = current_app.extensions["openapi_cache"]
    return Response(json.dumps(cache.merged()), mimetype="application/json")


def asyncapi_view() -> Response:
    """The AsyncAPI document of the suite's events (generated from shared.contracts)."""
    return Response(asyncapi.document_json(), mimetype="application/json")


def init_app(app: Flask, upstreams: Mapping[str, str], fetch: Fetch | None = None) -> None:
    """Serve /openapi.json, the Swagger UI at /docs, and the event catalogue /asyncapi.json."""
    if fetch is None:
        session = requests.Session()
        session.trust_env = False
        # Short: a slow service must not hold /openapi.json for the full proxy timeout.
        fetch = http_fetcher(session, (float(app.config["GATEWAY_CONNECT_TIMEOUT"]), 3.0))
    app.extensions["openapi_cache"] = SpecCache(
        upstreams, fetch, float(app.config["GATEWAY_OPENAPI_TTL_SECONDS"])
    )
    app.add_url_rule("/openapi.json", "openapi", openapi_view, methods=["GET"])
    app.add_url_rule("/asyncapi.json", "asyncapi", asyncapi_view, methods=["GET"])
    docs_page.init_app(app)
