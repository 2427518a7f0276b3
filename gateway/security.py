"""Who is calling (verified locally, once per request), CORS and the security headers."""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request

from gateway.revocation import RevocationStore, token_predates
from gateway.routes import Match, RouteTable
from shared.errors import NotFoundError, ServiceError, UnauthorizedError, problem
from shared.tokens import Principal, TokenVerifier, bearer_token

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
CORS_ALLOWED_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, X-Request-ID, "
    "traceparent"
)
CORS_EXPOSED_HEADERS = (
    "X-Request-ID, ETag, Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, "
    "RateLimit-Reset, WWW-Authenticate"
)
CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"

# Endpoints of the gateway itself that take a token (the rest of its own are public).
PROTECTED_ENDPOINTS = frozenset({"verify"})


def route_match() -> Match | None:
    """The route of this request (resolved once; None for the gateway's own endpoints)."""
    if "route_match" not in g:
        table: RouteTable = current_app.extensions["route_table"]
        g.route_match = table.match(request.method, request.path) if _is_proxied() else None
    match: Match | None = g.route_match
    return match


def _is_proxied() -> bool:
    return request.endpoint == "proxy"


def needs_token() -> bool:
    """True when this request must carry a valid access token."""
    if request.endpoint in PROTECTED_ENDPOINTS:
        return True
    match = route_match()
    return match is not None and not match.public


def resolve_principal() -> Principal | None:
    """Verify the bearer token once per request; None when absent, invalid or not needed.

    Signature and claims only, locally: the revocation check comes with the rate limits'
    round trip (`check_revocation`). A failure is remembered and raised by
    `require_principal`, so that the client gets the precise 401.
    """
    if "auth_checked" not in g:
        g.auth_checked = True
        g.principal = None
        g.auth_error = None
        if needs_token():
            verifier: TokenVerifier = current_app.extensions["token_verifier"]
            try:
                g.principal = verifier.verify(bearer_token(request.headers.get("Authorization")))
            except ServiceError as exc:
                g.auth_error = exc
    principal: Principal | None = g.principal
    return principal


def check_revocation(revoked_at: float | None) -> None:
    """Refuse this request's token when its user was deactivated after it was issued."""
    g.revocation_checked = True
    principal: Principal | None = g.get("principal")
    if principal is not None and token_predates(principal, revoked_at):
        g.principal = None
        g.auth_error = UnauthorizedError(
            "This token was revoked.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


def require_principal() -> Principal:
    """The verified, unrevoked caller, or the error that verification raised (401, 503)."""
    principal = resolve_principal()
    if principal is not None and not g.get("revocation_checked"):
        # Not counted by the limiter (an endpoint it does not cover): ask the store itself.
        store: RevocationStore = current_app.extensions["revocations"]
        check_revocation(store.revoked_at(principal.user_id))
        principal = g.principal
    if principal is None:
        error = g.get("auth_error") or UnauthorizedError(
            "Authentication required.", headers={"WWW-Authenticate": "Bearer"}
        )
        raise error
    return principal


def match_route_or_404() -> None:
    """before_request: unknown paths are 404 before any limit or token is looked at."""
    if _is_proxied() and route_match() is None:
        raise NotFoundError("No service serves this path.")


def _allowed_origin(origin: str | None) -> str | None:
    if not origin:
        return None
    allowed: list[str] = current_app.config["GATEWAY_CORS_ORIGINS"]
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


def is_preflight() -> bool:
    """True for a CORS preflight: OPTIONS with an Origin and Access-Control-Request-Method."""
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


def answer_preflight() -> Response | None:
    """before_request: CORS preflights are answered here and never reach a service.

    Any other OPTIONS asks which methods a path has: only the service that owns the path
    knows (its `Allow`), so it is forwarded like any request, and needs no token.
    """
    if not is_preflight():
        return None
    origin = request.headers["Origin"]
    allowed = _allowed_origin(origin)
    if allowed is None:
        return problem(403, "This origin may not call the API from a browser.")
    response = Response(status=204)
    response.headers["Access-Control-Allow-Origin"] = allowed
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = str(current_app.config["GATEWAY_CORS_MAX_AGE"])
    response.vary.add("Origin")
    return response


def add_response_headers(response: Response) -> Response:
    """after_request: security headers on everything; CORS headers for allowed origins."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers.pop("Server", None)
    if request.method != "OPTIONS":
        allowed = _allowed_origin(request.headers.get("Origin"))
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
        if current_app.config["GATEWAY_CORS_ORIGINS"]:
            # Caches must not hand one origin's answer to another.
            response.vary.add("Origin")
    return response


def init_app(app: Flask, verifier: TokenVerifier, revocations: RevocationStore) -> None:
    """Route matching, preflights and response headers; registered before the limiter."""
    app.extensions["route_table"] = RouteTable.from_config(app.config)
    app.extensions["token_verifier"] = verifier
    app.extensions["revocations"] = revocations
    app.before_request(answer_preflight)
    app.before_request(match_route_or_404)
    app.after_request(add_response_headers)
