"""/readyz takes a pod out of rotation only for what it cannot serve without.

A service needs its database; a broker outage only delays events (the outbox keeps them),
so it leaves the service ready, "degraded". The gateway needs Redis and auth's keys; an
upstream that is down is reported, and the gateway answers 503 for that upstream alone.
"Down" here is an address nothing listens on: no shared server is stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import flask_migrate
import pytest
from flask import Flask

from gateway import create_app as create_gateway
from gateway.tests.conftest import JWKS, make_env, routes_to, static_verifier
from gateway.tests.fakes import FakeUpstream
from services.orders import MIGRATIONS_DIR
from services.orders import create_app as create_orders
from services.orders.models import db
from shared import health
from tests.support import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


def nowhere(scheme: str) -> str:
    """A URL of a server that is down: nothing listens on its port."""
    return {
        "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/orders",
        "amqp": f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F",
        "redis": f"redis://127.0.0.1:{free_port()}/0",
        "http": f"http://127.0.0.1:{free_port()}",
    }[scheme]


# -- a service ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orders_database(database_factory: Callable[[str], str]) -> str:
    """A migrated orders database."""
    url = database_factory("ops_ready")
    app = create_orders({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS_DIR)
        db.engine.dispose()
    return url


@pytest.fixture
def orders_app() -> Iterator[Callable[..., Flask]]:
    """Build orders apps on given database and broker URLs; their engines are closed after."""
    made: list[Flask] = []

    def make(*, database: str, broker: str) -> Flask:
        app = create_orders(
            {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database, "AMQP_URL": broker}
        )
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()


def readyz(app: Flask) -> tuple[int, dict[str, Any]]:
    """Status code and body of the app's /readyz."""
    response = app.test_client().get("/readyz")
    return response.status_code, response.get_json()


def test_a_service_with_its_database_and_broker_is_ready(orders_app, orders_database, amqp_url):
    code, body = readyz(orders_app(database=orders_database, broker=amqp_url))

    assert code == 200
    assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_a_service_whose_database_is_down_is_not_ready(orders_app, amqp_url):
    code, body = readyz(orders_app(database=nowhere("postgresql"), broker=amqp_url))

    assert code == 503
    assert body == {"status": "unavailable", "checks": {"database": "unavailable", "broker": "ok"}}


def test_a_service_whose_broker_is_down_stays_ready_but_degraded(orders_app, orders_database):
    code, body = readyz(orders_app(database=orders_database, broker=nowhere("amqp")))

    assert code == 200
    assert body == {"status": "degraded", "checks": {"database": "ok", "broker": "unavailable"}}


def test_a_service_with_neither_is_not_ready(orders_app):
    code, body = readyz(orders_app(database=nowhere("postgresql"), broker=nowhere("amqp")))

    assert code == 503
    assert body["status"] == "unavailable"


# -- the gateway ----------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A service stand-in whose /readyz answers 200 and which serves the test JWKS."""
    fake = FakeUpstream(jwks=JWKS).start()
    yield fake
    fake.stop()


def gateway(url: str, *, redis_url: str = "", jwks_url: str | None = None, **config: Any) -> Flask:
    """A gateway in front of `url`; its keys come from `jwks_url` when given, else are built in."""
    app = create_gateway(
        {
            "TESTING": True,
            "GATEWAY_ROUTES": routes_to(url),
            "GATEWAY_CONNECT_TIMEOUT": 0.5,
            "GATEWAY_READY_TTL_SECONDS": 0,
            "JWKS_URL": jwks_url or f"{url}/api/v1/auth/jwks.json",
            "JWKS_MIN_REFETCH_SECONDS": 0,
            **config,
        },
        env=make_env(REDIS_URL=redis_url, GATEWAY_REDIS_PREFIX=f"ops-ready-{free_port()}"),
    )
    if jwks_url is None:
        app.extensions["token_verifier"] = static_verifier()
    return app


def test_a_gateway_with_every_upstream_ready_is_ready(upstream):
    code, body = readyz(gateway(upstream.url, redis_url=REDIS_URL))

    assert code == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"auth", "orders", "notifications", "redis", "jwks"}


def test_a_gateway_whose_upstreams_are_down_stays_ready_but_degraded():
    code, body = readyz(gateway(nowhere("http"), redis_url=REDIS_URL))

    assert code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["orders"] == "unavailable"
    assert body["checks"]["redis"] == "ok"


def test_a_gateway_whose_upstream_is_not_ready_stays_ready_but_degraded(upstream):
    upstream.ready_status = 503

    code, body = readyz(gateway(upstream.url))

    assert code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["auth"] == "unavailable"


def test_a_gateway_whose_redis_is_down_is_not_ready(upstream):
    code, body = readyz(gateway(upstream.url, redis_url=nowhere("redis")))

    assert code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] == "unavailable"
    assert body["checks"]["orders"] == "ok"


def test_a_gateway_that_never_got_the_keys_is_not_ready_until_it_does(upstream):
    down = nowhere("http")
    app = gateway(upstream.url, jwks_url=f"{down}/api/v1/auth/jwks.json")

    code, body = readyz(app)
    assert code == 503
    assert body["checks"]["jwks"] == "unavailable"

    # Auth comes up: the next probe fetches the keys itself.
    app.extensions["token_verifier"].keys.url = f"{upstream.url}/api/v1/auth/jwks.json"
    assert readyz(app)[0] == 200
    assert upstream.jwks_fetches == 1


def test_a_gateway_keeps_its_keys_and_readiness_through_an_auth_outage(upstream):
    app = gateway(upstream.url, jwks_url=f"{upstream.url}/api/v1/auth/jwks.json")
    assert readyz(app)[0] == 200

    # Auth goes away: a refetch of the keys would fail from now on.
    app.extensions["token_verifier"].keys.url = f"{nowhere('http')}/api/v1/auth/jwks.json"
    code, body = readyz(app)

    assert code == 200
    assert body["checks"]["jwks"] == "ok"


# -- the mechanism --------------------------------------------------------------------------


def failing() -> None:
    """A check that always fails."""
    raise RuntimeError("down")


def test_naming_an_unknown_check_as_optional_is_refused():
    with pytest.raises(ValueError, match="brokr"):
        health.init_app(Flask(__name__), {"broker": failing}, degraded_ok={"brokr"})
