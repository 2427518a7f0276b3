"""Which headers cross the gateway, in each direction (pure functions, no Flask)."""

from __future__ import annotations

from collections.abc import Iterable

# RFC 9110 7.6.1 (plus the legacy ones proxies still see): they describe one connection,
# never the message, so a proxy must not forward them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Headers some proxies and frameworks read as "who is calling". A client could send them
# to pose as anyone, so they never reach a service from outside. Matched as prefixes.
IDENTITY_HEADER_PREFIXES = (
    "x-user",  # x-user-id, x-userid, x-user-roles, x-username ...
    "x-auth",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-remote-user",
    "x-remote-group",
    "remote-user",
    "x-role",
    "x-roles",
    "x-principal",
    "x-authenticated",
    "x-consumer-",
    "x-credential",
    "x-jwt",
    "x-token",
    "x-email",
    "x-groups",
    "x-scope",
    "x-admin",
    "x-identity",
    "x-amzn-oidc",
    "x-ms-client-principal",
    "x-goog-authenticated",
)

# Set by the gateway itself from what it knows; whatever the client sent is dropped.
GATEWAY_SET = frozenset(
    {
        "host",
        "content-length",
        "x-request-id",
        "traceparent",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "forwarded",
        "x-real-ip",
        # The gateway has read the whole body already; the upstream gets it in one go.
        "expect",
    }
)

# Upstream response headers the gateway replaces with its own.
REPLACED_IN_RESPONSE = frozenset(
    {
        "server",
        "date",
        "x-request-id",
        "traceparent",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit-policy",
        "ratelimit",
    }
)


def is_identity_header(name: str) -> bool:
    """True for a header a client could use to claim an identity."""
    return name.lower().startswith(IDENTITY_HEADER_PREFIXES)


def connection_tokens(value: str | None) -> set[str]:
    """Header names listed in a Connection header (also hop-by-hop for this message)."""
    return {token.strip().lower() for token in (value or "").split(",") if token.strip()}


def request_headers_for_upstream(
    incoming: Iterable[tuple[str, str]],
    *,
    connection: str | None,
    request_id: str,
    traceparent: str | None,
    forwarded_for: str,
    forwarded_host: str,
    forwarded_proto: str,
    user_id: str | None,
) -> dict[str, str]:
    """The headers to send upstream: the client's, minus hop-by-hop and identity claims."""
    drop = HOP_BY_HOP | GATEWAY_SET | connection_tokens(connection)
    out: dict[str, str] = {}
    for name, value in incoming:
        lowered = name.lower()
        if lowered in drop or is_identity_header(lowered):
            continue
        # Repeated headers are joined, as RFC 9110 5.3 allows for list-valued fields.
        out[name] = f"{out[name]}, {value}" if name in out else value
    out["X-Request-ID"] = request_id
    if traceparent:
        out["traceparent"] = traceparent
    out["X-Forwarded-For"] = forwarded_for
    out["X-Forwarded-Host"] = forwarded_host
    out["X-Forwarded-Proto"] = forwarded_proto
    if user_id is not None:
        # Informational only: services verify the token themselves and ignore this.
        out["X-User-Id"] = user_id
    return out


def response_headers_for_client(
    upstream: Iterable[tuple[str, str]], *, connection: str | None
) -> list[tuple[str, str]]:
    """The upstream's response headers minus hop-by-hop ones and those we set ourselves."""
    drop = HOP_BY_HOP | REPLACED_IN_RESPONSE | connection_tokens(connection)
    return [(name, value) for name, value in upstream if name.lower() not in drop]


def append_forwarded(existing: str | None, ours: str | None) -> str:
    """An X-Forwarded-For/-Proto list with what this hop saw appended (the peer, the scheme)."""
    ours = ours or "unknown"
    existing = (existing or "").strip()
    return f"{existing}, {ours}" if existing else ours
