"""The OpenAPI documents tell a client the truth: valid, named operations, problem+json errors."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate

from gateway.openapi import merge_specs
from shared.errors import PROBLEM_CONTENT_TYPE

SERVICES = ("auth", "orders", "notifications")
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, Flask]]:
    """Each service's app; building one and serving its spec connects to nothing."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APP_ENV", "test")
        yield {
            name: importlib.import_module(f"services.{name}").create_app(
                {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}
            )
            for name in SERVICES
        }


@pytest.fixture(scope="module")
def specs(apps: dict[str, Flask]) -> dict[str, dict[str, Any]]:
    """Each service's /openapi.json."""
    return {name: app.test_client().get("/openapi.json").get_json() for name, app in apps.items()}


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) for every operation of a document."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref."""
    while "$ref" in node:
        kind, name = node["$ref"].removeprefix("#/components/").split("/", 1)
        node = spec["components"][kind][name]
    return node


def error_statuses(operation: dict[str, Any]) -> list[str]:
    """The documented statuses that are errors."""
    return [s for s in operation["responses"] if s == "default" or int(s) >= 400]


def check_document(spec: dict[str, Any]) -> None:
    """Valid, an operationId on every operation, problem+json for every error."""
    validate(spec)
    seen: set[str] = set()
    for path, method, operation in operations(spec):
        where = f"{method.upper()} {path}"
        operation_id = operation.get("operationId")
        assert operation_id, f"{where} has no operationId"
        assert operation_id not in seen, f"{where} reuses the operationId {operation_id}"
        seen.add(operation_id)
        assert error_statuses(operation), f"{where} documents no error"
        for status in error_statuses(operation):
            content = resolve(spec, operation["responses"][status]).get("content", {})
            assert list(content) == [PROBLEM_CONTENT_TYPE], f"{where} {status}: {list(content)}"
            schema = resolve(spec, content[PROBLEM_CONTENT_TYPE]["schema"])
            assert {"type", "title", "status", "detail"} <= set(schema["required"]), where


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_documents_its_errors_as_problems(
    specs: dict[str, dict[str, Any]], service: str
) -> None:
    check_document(specs[service])


def test_the_merged_document_is_valid_and_documents_the_gateways_own_errors(
    specs: dict[str, dict[str, Any]],
) -> None:
    merged = merge_specs(specs, unavailable=[])

    check_document(merged)
    for path, method, operation in operations(merged):
        assert {"429", "503", "504"} <= set(operation["responses"]), f"{method} {path}"


def test_the_documented_statuses_are_the_ones_the_use_cases_answer(
    specs: dict[str, dict[str, Any]],
) -> None:
    orders = specs["orders"]["paths"]
    change = orders["/api/v1/orders/{order_id}/status"]["post"]["responses"]
    login = specs["auth"]["paths"]["/api/v1/auth/login"]["post"]["responses"]

    assert {"401", "403", "404", "409", "412", "422", "503"} <= set(change)
    assert {"401", "422", "429"} <= set(login)
    assert "401" not in orders["/api/v1/products"]["get"]["responses"]  # anyone may list


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_behind_a_token_answers_a_documented_401_problem(
    apps: dict[str, Flask], specs: dict[str, dict[str, Any]], service: str
) -> None:
    client = apps[service].test_client()
    secured = [op for op in operations(specs[service]) if op[2].get("security")]
    assert secured
    for path, method, operation in secured:
        url = path.replace("{", "").replace("}", "")
        for parameter in ("order_id", "notification_id", "webhook_id", "user_id"):
            url = url.replace(parameter, str(uuid.uuid4()))
        response = client.open(url, method=method.upper(), json={})

        assert response.status_code == 401, f"{method} {path}"
        assert response.mimetype == PROBLEM_CONTENT_TYPE
        assert "401" in operation["responses"]


def test_a_notification_documents_the_link_to_its_subject(
    specs: dict[str, dict[str, Any]],
) -> None:
    spec = specs["notifications"]
    subject = spec["components"]["schemas"]["Notification"]["properties"]["subject"]
    [link] = [resolve(spec, option) for option in subject["anyOf"] if "$ref" in option]

    assert set(link["properties"]) == {"type", "id", "path"}
    assert link["properties"]["type"]["enum"] == ["order", "user", "webhook"]


@pytest.mark.parametrize(
    ("service", "path"),
    [("auth", "/api/v1/auth/users/{user_id}"), ("orders", "/api/v1/products/{sku}")],
)
def test_a_patch_that_names_no_field_is_invalid_by_the_document(
    specs: dict[str, dict[str, Any]], service: str, path: str
) -> None:
    spec = specs[service]
    body = spec["paths"][path]["patch"]["requestBody"]["content"]["application/json"]["schema"]

    # The service answers 422 to `{}`; a client reading the document knows it beforehand.
    assert resolve(spec, body)["minProperties"] == 1
