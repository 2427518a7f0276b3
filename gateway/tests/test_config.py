"""Settings that cannot work stop the gateway at start-up, not on the first request."""

from __future__ import annotations

import pytest

from gateway import create_app
from gateway.config import DEFAULT_PUBLIC_ROUTES
from gateway.tests.conftest import make_env
from shared.config import ConfigError


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
    assert app.extensions["upstream_client"].timeout == (0.25, 15.0)
    assert app.config["GATEWAY_PUBLIC_ROUTES"] == list(DEFAULT_PUBLIC_ROUTES)
