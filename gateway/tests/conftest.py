"""Fixtures of the gateway tests: our own signing key, fake upstreams, gateway apps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from gateway import create_app
from gateway.tests.fakes import FakeUpstream
from shared.config import Env
from shared.tokens import StaticKeySource, TokenVerifier
from tests.support import access_token_claims, rsa_jwk, rsa_private_key, sign_access_token

ISSUER = "https://auth.test/api/v1/auth"
AUDIENCE = "suite-test"
KID = "test-key-1"
KEY = rsa_private_key()


def jwk(private_key: rsa.RSAPrivateKey = KEY, kid: str = KID) -> dict[str, Any]:
    """The public JWK of a key."""
    return rsa_jwk(private_key, kid)


JWKS = {"keys": [jwk()]}


def token(
    sub: str | None = "user-1",
    *,
    roles: tuple[str, ...] = ("user",),
    key: rsa.RSAPrivateKey = KEY,
    kid: str = KID,
    **claims: Any,
) -> str:
    """A signed access token; `claims` override (None removes) the standard ones."""
    payload = access_token_claims(
        issuer=ISSUER, audience=AUDIENCE, sub=sub, roles=list(roles), **claims
    )
    return sign_access_token(payload, key, kid=kid)


def bearer(sub: str = "user-1", **kwargs: Any) -> dict[str, str]:
    """An Authorization header with a fresh valid token."""
    return {"Authorization": f"Bearer {token(sub, **kwargs)}"}


def make_env(**settings: str) -> Env:
    """A test-run environment with our issuer and audience."""
    return Env(
        {
            "APP_ENV": "test",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
            **settings,
        }
    )


def routes_to(url: str) -> list[dict[str, Any]]:
    """A route table sending every service to one upstream URL."""
    return [
        {"prefix": "/api/v1/auth", "upstream": "auth", "url": url},
        {"prefix": "/api/v1/orders", "upstream": "orders", "url": url},
        {"prefix": "/api/v1/products", "upstream": "orders", "url": url},
        {"prefix": "/api/v1/notifications", "upstream": "notifications", "url": url},
        {
            "prefix": "/.well-known/jwks.json",
            "upstream": "auth",
            "url": url,
            "rewrite": "/api/v1/auth/jwks.json",
        },
    ]


def static_verifier() -> TokenVerifier:
    """A verifier that knows our test key without any HTTP."""
    return TokenVerifier(StaticKeySource(JWKS), issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A recording upstream that serves the test JWKS."""
    fake = FakeUpstream(jwks=JWKS).start()
    yield fake
    fake.stop()


MakeGateway = Callable[..., Flask]


@pytest.fixture
def make_gateway(upstream: FakeUpstream) -> MakeGateway:
    """Build a gateway in front of `upstream` (or `url`), with extra config on top."""

    def make(url: str | None = None, *, remote_jwks: bool = False, **config: Any) -> Flask:
        base_url = url or upstream.url
        overrides = {
            "TESTING": True,
            "GATEWAY_ROUTES": routes_to(base_url),
            "GATEWAY_CONNECT_TIMEOUT": 1.0,
            "GATEWAY_READ_TIMEOUT": 0.5,
            "JWKS_URL": f"{base_url}/api/v1/auth/jwks.json",
            **config,
        }
        app = create_app(overrides, env=make_env())
        if not remote_jwks:
            app.extensions["token_verifier"] = static_verifier()
        return app

    return make


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> Flask:
    """A gateway with default settings in front of the fake upstream."""
    return make_gateway()


@pytest.fixture
def client(gateway: Flask):
    """A test client of `gateway`."""
    return gateway.test_client()
