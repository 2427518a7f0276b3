"""The gateway's own settings, read from the environment on top of `common_config`."""

from __future__ import annotations

from typing import Any

from shared.config import ConfigError, Env

# Per verified user and per client address; the nginx edge renders the same ones.
DEFAULT_RATE_LIMIT_USER = "600/minute"
DEFAULT_RATE_LIMIT_IP = "1200/minute"

# Requests a client may send without a token. Everything else behind a route needs one.
DEFAULT_PUBLIC_ROUTES = (
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/verify-email",
    "GET /api/v1/auth/verify-email",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
    "GET /api/v1/auth/jwks.json",
    "GET /.well-known/jwks.json",
    # The catalogue is for anyone to browse; only its first page's path, with a query string
    # or not: changing it (POST, PATCH /api/v1/products/<sku>) still needs a token.
    "GET /api/v1/products",
)


def upstream_urls(env: Env) -> dict[str, str]:
    """Base URL of each upstream service (`AUTH_URL`, `ORDERS_URL`, `NOTIFICATIONS_URL`)."""
    return {
        name: env.string(f"{name.upper()}_URL", f"http://127.0.0.1:{env.port(name)}").rstrip("/")
        for name in ("auth", "orders", "notifications")
    }


def default_routes(upstreams: dict[str, str]) -> list[dict[str, Any]]:
    """The route table: path prefix -> upstream; `rewrite` replaces the matched prefix."""
    return [
        {"prefix": "/api/v1/auth", "upstream": "auth", "url": upstreams["auth"]},
        {"prefix": "/api/v1/orders", "upstream": "orders", "url": upstreams["orders"]},
        # The product catalogue lives in orders, which prices orders from it.
        {"prefix": "/api/v1/products", "upstream": "orders", "url": upstreams["orders"]},
        {
            "prefix": "/api/v1/notifications",
            "upstream": "notifications",
            "url": upstreams["notifications"],
        },
        # The well-known location is an alias: auth publishes the set under its own prefix.
        {
            "prefix": "/.well-known/jwks.json",
            "upstream": "auth",
            "url": upstreams["auth"],
            "rewrite": "/api/v1/auth/jwks.json",
        },
    ]


def _list(env: Env, name: str, default: str) -> list[str]:
    raw = env.optional(name)
    value = default if raw is None else raw
    return [item.strip() for item in value.split(",") if item.strip()]


def gateway_config(env: Env) -> dict[str, Any]:
    """Flask config keys of the gateway."""
    upstreams = upstream_urls(env)
    # The worker's concurrency: gunicorn's thread count (shared.gunicorn_conf reads the same).
    threads = env.integer("GUNICORN_THREADS", 4)
    config: dict[str, Any] = {
        "GATEWAY_UPSTREAMS": upstreams,
        "GATEWAY_ROUTES": default_routes(upstreams),
        "GATEWAY_PUBLIC_ROUTES": list(DEFAULT_PUBLIC_ROUTES),
        "GATEWAY_CONNECT_TIMEOUT": env.number("GATEWAY_CONNECT_TIMEOUT", 2.0),
        "GATEWAY_READ_TIMEOUT": env.number("GATEWAY_READ_TIMEOUT", 15.0),
        # Keep-alive connections kept per upstream host, sized to the worker's concurrency.
        "GATEWAY_UPSTREAM_POOL_SIZE": env.integer("GATEWAY_UPSTREAM_POOL_SIZE", threads),
        "GATEWAY_RATE_LIMIT_USER": env.string("GATEWAY_RATE_LIMIT_USER", DEFAULT_RATE_LIMIT_USER),
        "GATEWAY_RATE_LIMIT_IP": env.string("GATEWAY_RATE_LIMIT_IP", DEFAULT_RATE_LIMIT_IP),
        # Namespaces our keys on a Redis other programs may share.
        "GATEWAY_REDIS_PREFIX": env.string("GATEWAY_REDIS_PREFIX", "gateway"),
        "GATEWAY_CORS_ORIGINS": _list(env, "GATEWAY_CORS_ORIGINS", ""),
        "GATEWAY_CORS_MAX_AGE": env.integer("GATEWAY_CORS_MAX_AGE", 600),
        "GATEWAY_OPENAPI_TTL_SECONDS": env.number("GATEWAY_OPENAPI_TTL_SECONDS", 60.0),
        "GATEWAY_READY_TTL_SECONDS": env.number("GATEWAY_READY_TTL_SECONDS", 2.0),
    }
    validate_config(config)
    return config


def validate_config(config: dict[str, Any]) -> None:
    """Refuse settings that cannot work, at start-up rather than on the first request."""
    for name in ("GATEWAY_CONNECT_TIMEOUT", "GATEWAY_READ_TIMEOUT"):
        if float(config[name]) <= 0:
            raise ConfigError(f"{name} must be positive")
    if int(config["GATEWAY_UPSTREAM_POOL_SIZE"]) < 1:
        raise ConfigError("GATEWAY_UPSTREAM_POOL_SIZE must be at least 1")
    for origin in config["GATEWAY_CORS_ORIGINS"]:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(f"GATEWAY_CORS_ORIGINS entry {origin!r} must be an origin URL")
