"""The login throttle as a client meets it, directly and through the gateway (integration)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from services.auth.tests.conftest import PASSWORD, AuthActions, dispose, make_app

pytestmark = pytest.mark.integration

GATEWAY = "10.0.0.5"


@pytest.fixture
def behind_gateway(pg_app: Flask, pg_url: str, pg_keys_dir, amqp_url: str) -> Iterator[Flask]:
    """Auth configured as deployed: it believes X-Forwarded-For from the gateway only."""
    app = make_app(
        pg_url, pg_keys_dir, amqp_url=amqp_url, TRUSTED_PROXY_HOPS=1, TRUSTED_PROXIES=GATEWAY
    )
    yield app
    dispose(app)


def test_a_caller_rotating_x_forwarded_for_straight_at_auth_is_throttled(behind_gateway):
    auth = AuthActions(behind_gateway.test_client())
    assert auth.register().status_code == 201
    statuses = [
        auth.login(
            password="wrong " + PASSWORD,
            headers={"X-Forwarded-For": f"198.51.100.{attempt}"},
        ).status_code
        for attempt in range(6)
    ]
    assert statuses == [401] * 5 + [429]


def test_through_the_gateway_each_client_address_has_its_own_allowance(behind_gateway):
    auth = AuthActions(behind_gateway.test_client())
    auth.register()
    via_gateway = {"environ_base": {"REMOTE_ADDR": GATEWAY}}
    for _ in range(5):
        auth.login(
            password="wrong " + PASSWORD, headers={"X-Forwarded-For": "203.0.113.1"}, **via_gateway
        )
    blocked = auth.login(headers={"X-Forwarded-For": "203.0.113.1"}, **via_gateway)
    assert blocked.status_code == 429
    other = auth.login(headers={"X-Forwarded-For": "203.0.113.2"}, **via_gateway)
    assert other.status_code == 200
