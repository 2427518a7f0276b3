"""The login throttle as a client meets it, directly and through the gateway (integration)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from services.auth.tests.conftest import (
    PASSWORD,
    AuthActions,
    FakeClock,
    deps_of,
    dispose,
    make_app,
)

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
    assert auth.register().status_code == 202
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


@pytest.fixture
def slow_account(pg_app: Flask, pg_url: str, pg_keys_dir, amqp_url: str) -> Iterator[Flask]:
    """Auth slowing an account down after 3 failures from any addresses, 10 s apart."""
    app = make_app(
        pg_url,
        pg_keys_dir,
        amqp_url=amqp_url,
        AUTH_LOGIN_ACCOUNT_MAX_FAILURES=3,
        AUTH_LOGIN_ACCOUNT_DELAY_SECONDS=10,
    )
    deps_of(app).clock = FakeClock()
    yield app
    dispose(app)


def from_address(address: str) -> dict[str, dict[str, str]]:
    return {"environ_base": {"REMOTE_ADDR": address}}


def test_failures_spread_over_addresses_slow_the_account_down_without_locking_it(slow_account):
    auth = AuthActions(slow_account.test_client())
    clock = deps_of(slow_account).clock
    auth.register()
    for n in range(3):  # one failure per address: no address reaches its own limit
        wrong = auth.login(password="wrong " + PASSWORD, **from_address(f"198.51.100.{n}"))
        assert wrong.status_code == 401

    slowed = auth.login(password="wrong " + PASSWORD, **from_address("198.51.100.50"))
    assert slowed.status_code == 429
    assert slowed.mimetype == "application/problem+json"
    assert 1 <= int(slowed.headers["Retry-After"]) <= 11
    # The owner too must wait the delay, but no longer: slowed down, never locked out.
    assert auth.login(**from_address("203.0.113.1")).status_code == 429
    clock.advance(11)
    assert auth.login(**from_address("203.0.113.1")).status_code == 200

    # A guesser still gets one attempt per delay, not one per address.
    clock.advance(11)
    guesses = [
        auth.login(password="wrong " + PASSWORD, **from_address(f"192.0.2.{n}")).status_code
        for n in range(4)
    ]
    assert guesses == [401, 429, 429, 429]
