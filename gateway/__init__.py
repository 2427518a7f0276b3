"""The gateway: the one door clients use. It verifies tokens locally (cached JWKS), strips
identity headers, rate-limits, and forwards to auth, orders and notifications.

Request path, in order: request id and trace context -> 413 on a declared oversize body ->
CORS preflight -> route lookup (404) -> token check (local) -> per-IP and per-user limits
and the revocation lookup (one Redis round trip) -> forward (chunked bodies capped at
1 MiB) -> stream the answer back with security headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from flask import Flask

from gateway import openapi, proxy, ratelimit, revocation, security
from gateway.config import gateway_config, validate_config
from shared import errors, health
from shared.app import create_base_app, remote_verifier
from shared.config import Env
from shared.tokens import JWKSCache


def create_app(config: Mapping[str, Any] | None = None, *, env: Env | None = None) -> Flask:
    """Build the gateway app; `config` overrides settings, `env` replaces os.environ (tests)."""
    env = env or Env()
    app = create_base_app("gateway", __name__, gateway_config(env), config, env=env)
    validate_config(app.config)
    errors.init_app(app)
    # One pool of Redis connections for the limits and the revocations (None: memory).
    redis = (
        revocation.redis_client(app.config["REDIS_URL"], app.config["REDIS_TIMEOUT_SECONDS"])
        if app.config["REDIS_URL"]
        else None
    )
    security.init_app(app, remote_verifier(app), revocation_store(app, redis))
    ratelimit.init_app(
        app, ratelimit.RedisLimitStore(redis) if redis else ratelimit.MemoryLimitStore()
    )
    proxy.init_app(app)
    upstreams = app.extensions["route_table"].upstreams()
    openapi.init_app(app, upstreams)
    health.init_app(app, readiness_checks(app, upstreams), degraded_ok=upstreams)
    return app


def revocation_store(app: Flask, redis: Any | None) -> revocation.RevocationStore:
    """Redis when `REDIS_URL` is set (shared by all workers), else this process's memory."""
    ttl = int(app.config["GATEWAY_REVOCATION_TTL_SECONDS"])
    if redis is not None:
        return revocation.RedisRevocationStore(
            redis, prefix=app.config["GATEWAY_REDIS_PREFIX"], ttl_seconds=ttl
        )
    return revocation.MemoryRevocationStore(ttl)


def upstream_ready_check(url: str, timeout: float) -> health.Check:
    """A check that the upstream's own /readyz answers 200."""
    session = requests.Session()
    session.trust_env = False

    def check() -> None:
        response = session.get(f"{url}/readyz", timeout=(timeout, timeout))
        if response.status_code != 200:
            raise RuntimeError(f"readyz answered {response.status_code}")

    return check


def jwks_check(app: Flask) -> health.Check:
    """A check that this process holds auth's signing keys, fetching them while it has none.

    Once loaded, the keys are kept through an auth outage, and so is readiness.
    """

    def check() -> None:
        # Looked up per call: tests swap the verifier after create_app.
        keys = app.extensions["token_verifier"].keys
        if isinstance(keys, JWKSCache) and not keys.loaded():
            raise RuntimeError(f"no key set loaded from {keys.url} yet")

    return check


def readiness_checks(app: Flask, upstreams: Mapping[str, str]) -> dict[str, health.Check]:
    """Each upstream's readiness (cached briefly: probes come often), Redis if used, the JWKS.

    create_app reports the upstreams without requiring them: a gateway whose upstream is
    down still answers (503 problem+json, fast) for that upstream and serves the others,
    and an upstream's outage must not take every gateway pod out of rotation with it.
    Required are Redis (limits and revocations live there) and the JWKS (without keys no
    protected request can pass).
    """
    ttl = float(app.config["GATEWAY_READY_TTL_SECONDS"])
    timeout = float(app.config["GATEWAY_CONNECT_TIMEOUT"])
    checks: dict[str, health.Check] = {
        name: health.CachedCheck(upstream_ready_check(url, timeout), ttl=ttl)
        for name, url in sorted(upstreams.items())
    }
    store = app.extensions["revocations"]
    if isinstance(store, revocation.RedisRevocationStore):
        client = store.client
        checks["redis"] = health.CachedCheck(lambda: client.ping(), ttl=ttl)
    checks["jwks"] = jwks_check(app)
    return checks
