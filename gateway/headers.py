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

# The request headers a client may pass to a service: content negotiation, the body's
# type, the token (services verify it again), idempotency and conditional requests, and
# tracing. Everything else stays at the gateway: a list of what to drop would always miss
# the next header some framework reads as "who is calling" (X-Uid, X-Tenant-Id, ...).
# CORS request headers are not here: the gateway answers CORS itself.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "authorization",
        "content-type",
        "idempotency-key",
        "if-match",
        "if-none-match",
        "tracestate",
        "user-agent",
    }
)

# Of those, the ones only a write uses: the edge's fast path serves GET and HEAD alone.
WRITE_REQUEST_HEADERS = frozenset({"content-type", "idempotency-key", "if-match"})

# What the nginx edge's fast path (gateway/nginx/default.conf.template) passes on of the
# client's headers, as they came: the GET part of the list above, and the client's
# traceparent, which the gateway would otherwise continue itself. The template is written
# by hand (the nginx image renders it with envsubst); a test holds it to this set.
EDGE_FAST_PATH_HEADERS = (FORWARDED_REQUEST_HEADERS - WRITE_REQUEST_HEADERS) | {"traceparent"}

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
    forwarded_proto: str,
    forwarded_host: str,
    user_id: str | None,
) -> dict[str, str]:
    """The headers to send upstream: the allowlisted ones of the client's, plus our own.

    Content-Length is left to the HTTP client: the gateway has read the whole body.
    """
    # A client may name any header hop-by-hop in Connection, even an allowed one.
    dropped = connection_tokens(connection) if connection else frozenset()
    out: dict[str, str] = {}
    for name, value in incoming:
        lowered = name.lower()
        if lowered not in FORWARDED_REQUEST_HEADERS or lowered in dropped:
            continue
        # Repeated headers are joined, as RFC 9110 5.3 allows for list-valued fields.
        out[name] = f"{out[name]}, {value}" if name in out else value
    out["X-Request-ID"] = request_id
    if traceparent:
        out["traceparent"] = traceparent
    out["X-Forwarded-For"] = forwarded_for
    out["X-Forwarded-Proto"] = forwarded_proto
    out["X-Forwarded-Host"] = forwarded_host
    if user_id is not None:
        # Informational only: services verify the token themselves and ignore this.
        out["X-User-Id"] = user_id
    return out


# What never crosses back, whatever the upstream's Connection header adds to it.
DROPPED_FROM_RESPONSE = HOP_BY_HOP | REPLACED_IN_RESPONSE


def response_headers_for_client(
    upstream: Iterable[tuple[str, str]], *, connection: str | None
) -> list[tuple[str, str]]:
    """The upstream's response headers minus hop-by-hop ones and those we set ourselves."""
    drop = (
        DROPPED_FROM_RESPONSE | connection_tokens(connection)
        if connection
        else DROPPED_FROM_RESPONSE
    )
    return [(name, value) for name, value in upstream if name.lower() not in drop]


def append_forwarded(existing: str | None, ours: str | None) -> str:
    """An X-Forwarded-For/-Proto list with what this hop saw appended (the peer, the scheme)."""
    ours = ours or "unknown"
    existing = (existing or "").strip()
    return f"{existing}, {ours}" if existing else ours
