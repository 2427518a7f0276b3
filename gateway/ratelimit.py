"""Per-user and per-IP rate limits (flask-limiter), held in Redis across workers and hosts.

Two application-wide limits apply to every proxied request and to /_auth/verify:

* per client IP (`GATEWAY_RATE_LIMIT_IP`), counted before any token is verified, so a
  flood of forged tokens is throttled like any other flood;
* per user (`GATEWAY_RATE_LIMIT_USER`), keyed by the verified token's `sub`.

Headers follow the IETF RateLimit fields draft: `RateLimit-Limit`, `RateLimit-Remaining`
and `RateLimit-Reset` in seconds from now (flask-limiter writes an epoch timestamp; we
convert it). A refusal is a 429 problem+json with `Retry-After`. flask-limiter would also
put a `Retry-After` on every successful response; we keep it for 429s only.

With `REDIS_URL` unset the counters live in each process's memory (so `-w 4` allows
four times the limit). If Redis fails, limits fall back to memory instead of failing
the request.
"""

from __future__ import annotations

import time

from flask import Flask, Response, current_app, request
from flask_limiter import ApplicationLimit, HeaderNames, Limiter, RateLimitExceeded
from limits import parse_many

from gateway.security import resolve_principal
from shared.config import ConfigError
from shared.errors import problem

# flask-limiter's Retry-After goes to a private header; ours is set only on a 429.
_LIMITER_RETRY_AFTER = "X-Gateway-Limiter-Retry-After"
HEADER_NAMES = {
    HeaderNames.LIMIT: "RateLimit-Limit",
    HeaderNames.REMAINING: "RateLimit-Remaining",
    HeaderNames.RESET: "RateLimit-Reset",
    HeaderNames.RETRY_AFTER: _LIMITER_RETRY_AFTER,
}
LIMITED_ENDPOINTS = frozenset({"proxy", "verify"})


def client_ip() -> str:
    """The caller's address (the real client's once TRUSTED_PROXY_HOPS trusts our edge)."""
    return request.remote_addr or "unknown"


def user_key() -> str:
    """The verified user of this request, as a limiter key."""
    principal = resolve_principal()
    return f"user:{principal.user_id}" if principal is not None else "anonymous"


def _without_user() -> bool:
    return resolve_principal() is None


def _not_limited() -> bool:
    # Probes, metrics and docs must keep answering while a client is being throttled.
    return request.endpoint not in LIMITED_ENDPOINTS


def too_many_requests(exc: RateLimitExceeded) -> Response:
    """429 problem+json with Retry-After (the seconds until the breached window frees up)."""
    limiter: Limiter = current_app.extensions["gateway_limiter"]
    current = limiter.current_limit
    retry_after = max(1, int(current.reset_at - time.time())) if current is not None else 1
    return problem(
        429,
        f"Rate limit exceeded ({exc.description}); retry after {retry_after} s.",
        title="Too Many Requests",
        code="rate-limited",
        headers={"Retry-After": str(retry_after)},
    )


def finish_headers(response: Response) -> Response:
    """after_request (runs after flask-limiter's): delta-seconds reset, no stray Retry-After."""
    response.headers.pop(_LIMITER_RETRY_AFTER, None)
    reset = response.headers.get("RateLimit-Reset")
    if reset is not None and reset.isdigit():
        # flask-limiter already rounded the reset time up to a whole second.
        response.headers["RateLimit-Reset"] = str(max(0, int(int(reset) - time.time())))
    return response


def storage_uri(app: Flask) -> str:
    """Redis when configured (shared by every worker), else this process's memory."""
    return str(app.config.get("RATELIMIT_STORAGE_URI") or app.config["REDIS_URL"] or "memory://")


def init_app(app: Flask) -> Limiter:
    """Wire flask-limiter with the per-IP and per-user limits from config."""
    for name in ("GATEWAY_RATE_LIMIT_IP", "GATEWAY_RATE_LIMIT_USER"):
        try:
            parse_many(app.config[name])
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    # Registered before the limiter's own after_request, so that it runs after it.
    app.after_request(finish_headers)
    limiter = Limiter(
        client_ip,
        application_limits=[
            ApplicationLimit(
                app.config["GATEWAY_RATE_LIMIT_IP"],
                key_function=client_ip,
                scope="ip",
                error_message="per client address",
            ),
            ApplicationLimit(
                app.config["GATEWAY_RATE_LIMIT_USER"],
                key_function=user_key,
                scope="user",
                exempt_when=_without_user,
                error_message="per user",
            ),
        ],
        headers_enabled=True,
        header_name_mapping=HEADER_NAMES,
        strategy=app.config["GATEWAY_RATE_LIMIT_STRATEGY"],
        storage_uri=storage_uri(app),
        storage_options={"socket_timeout": 1, "socket_connect_timeout": 1}
        if storage_uri(app).startswith("redis")
        else {},
        key_prefix=f"{app.config['GATEWAY_REDIS_PREFIX']}:ratelimit",
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    limiter.request_filter(_not_limited)
    limiter.init_app(app)
    app.extensions["gateway_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, too_many_requests)
    return limiter
