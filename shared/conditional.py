"""Conditional GETs of per-user data: ETags, `304 Not Modified`, and what caches may keep.

A client polling a page it already has sends the page's ETag in If-None-Match and gets a
304 with no body when nothing changed (the gateway does not count a 304 against its rate
limit). Views with a version of their own (one order) set a strong ETag; anything else (a
list, a page of notifications) gets a weak one made from its body, which changes whenever
any item on the page does. Weak is the honest kind there: the same JSON could be encoded
differently, and If-None-Match compares weakly anyway (RFC 9110 13.1.2).
"""

from __future__ import annotations

import hashlib

from flask import Response, request

# Per-user answers: only the client's own cache may keep them, and must ask again (with
# the ETag) before using them; `Vary` keeps one user's copy from answering another.
PER_USER_CACHE_CONTROL = "private, no-cache"


def body_etag(body: bytes) -> str:
    """A weak ETag's opaque value for a response body."""
    return hashlib.sha256(body).hexdigest()[:32]


def conditional_get(response: Response) -> Response:
    """after_request of a blueprint of per-user data: ETag, caching headers, 304 on a match."""
    if request.method not in ("GET", "HEAD") or response.status_code != 200:
        return response
    if "ETag" not in response.headers:
        response.set_etag(body_etag(response.get_data()), weak=True)
    response.headers["Cache-Control"] = PER_USER_CACHE_CONTROL
    response.vary.add("Authorization")
    response.make_conditional(request)  # turns it into the 304 in place
    return response
