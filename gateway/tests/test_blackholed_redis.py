"""A Redis that stops answering (frozen, not down): the gateway fails closed, then recovers.

The revocation lookup rides on the rate-limit round trip; when Redis cannot say whether a
token was revoked, accepting it could let a deactivated user in, so the gateway answers
503 within its Redis timeout, and serves again as soon as Redis does, without a restart.
"""

from __future__ import annotations

import time

import pytest

from gateway.tests.conftest import MakeGateway, bearer
from gateway.tests.fakes import FakeUpstream
from tests.support.nodes import RedisNode


@pytest.mark.chaos
@pytest.mark.integration
def test_a_frozen_redis_makes_protected_requests_fail_closed_fast_and_recover(
    make_gateway: MakeGateway, upstream: FakeUpstream, own_redis: RedisNode
):
    gateway = make_gateway(REDIS_URL=own_redis.url, REDIS_TIMEOUT_SECONDS=0.5)
    client = gateway.test_client()
    assert client.get("/api/v1/orders", headers=bearer()).status_code == 200
    forwarded = len(upstream.received)

    own_redis.freeze()
    try:
        started = time.monotonic()
        response = client.get("/api/v1/orders", headers=bearer())
        elapsed = time.monotonic() - started
    finally:
        own_redis.thaw()

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"]
    assert elapsed < 3, f"the frozen Redis held the request {elapsed:.1f} s"
    assert len(upstream.received) == forwarded  # nothing reached the service unchecked
    # Redis answers again: so does the gateway, with the same process and client pool.
    assert client.get("/api/v1/orders", headers=bearer()).status_code == 200
