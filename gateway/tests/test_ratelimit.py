"""The limiter: sliding windows, Retry-After that holds, one Redis round trip per request."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from gateway.ratelimit import MemoryLimitStore, RedisLimitStore, parse_limits
from gateway.revocation import user_deactivated_handler
from gateway.tests.conftest import bearer
from gateway.tests.test_revocation import deactivated
from tests.support import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_refused_client_gets_in_again_exactly_when_retry_after_says(make_gateway):
    gateway = make_gateway(GATEWAY_RATE_LIMIT_IP="3/minute")
    # 20 s into a minute: the previous minute's requests would still weigh on this one.
    clock = Clock(1_800_000_000 - 40)
    gateway.extensions["gateway_limiter"].store = MemoryLimitStore(clock=clock)
    client = gateway.test_client()

    assert [client.get("/api/v1/orders", headers=bearer()).status_code for _ in range(3)] == [
        200,
        200,
        200,
    ]
    refused = client.get("/api/v1/orders", headers=bearer())
    retry_after = int(refused.headers["Retry-After"])
    assert refused.status_code == 429
    assert refused.headers["RateLimit-Reset"] == str(retry_after)

    # The window ends in 40 s; then its 3 requests fade until only 2 weigh: 20 s later.
    assert retry_after == 60
    clock.now += retry_after - 1
    assert client.get("/api/v1/orders", headers=bearer()).status_code == 429
    clock.now += 1
    assert client.get("/api/v1/orders", headers=bearer()).status_code == 200


def test_memory_counters_stay_bounded_and_forget_idle_callers():
    clock = Clock(1_800_000_000)
    store = MemoryLimitStore(clock=clock, max_keys=10)
    (limit,) = parse_limits("ip", "5/minute")

    for i in range(10):
        store.hit([(limit.key("p", f"idle-{i}"), limit)], None)
    clock.now += 180
    for i in range(50):
        store.hit([(limit.key("p", f"busy-{i}"), limit)], None)

    assert len(store._windows) <= 10


def test_the_header_reports_the_limit_closest_to_refusing(make_gateway):
    client = make_gateway(
        GATEWAY_RATE_LIMIT_IP="100/minute", GATEWAY_RATE_LIMIT_USER="10/minute;4/second"
    ).test_client()

    response = client.get("/api/v1/orders", headers=bearer())

    assert response.headers["RateLimit-Limit"] == "4"
    assert response.headers["RateLimit-Remaining"] == "3"


@pytest.fixture
def redis_gateway(make_gateway) -> Iterator:
    """A gateway on the real Redis, under a key prefix of its own."""
    prefix = f"gw-test-{uuid.uuid4().hex[:8]}"
    gateway = make_gateway(REDIS_URL=REDIS_URL, GATEWAY_REDIS_PREFIX=prefix)
    yield gateway
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def count_redis_commands(gateway) -> list[str]:
    """The commands the gateway sends from now on (the real Redis still answers them)."""
    client = gateway.extensions["gateway_limiter"].store.client
    sent: list[str] = []
    execute = client.execute_command

    def counting(*args, **options):
        sent.append(str(args[0]))
        return execute(*args, **options)

    client.execute_command = counting
    return sent


@pytest.mark.integration
def test_a_protected_request_costs_one_redis_round_trip(redis_gateway):
    client = redis_gateway.test_client()
    assert client.get("/api/v1/orders", headers=bearer("alice")).status_code == 200  # warm
    sent = count_redis_commands(redis_gateway)

    response = client.get("/api/v1/orders", headers=bearer("alice"))

    assert response.status_code == 200
    assert response.headers["RateLimit-Remaining"]
    assert sent == ["EVALSHA"]


@pytest.mark.integration
def test_the_revocation_lookup_shares_that_round_trip(redis_gateway):
    client = redis_gateway.test_client()
    headers = bearer("leaving", iat=int(time.time()) - 60)
    assert client.get("/api/v1/orders", headers=headers).status_code == 200
    user_deactivated_handler(redis_gateway.extensions["revocations"])(deactivated("leaving"))
    sent = count_redis_commands(redis_gateway)

    refused = client.get("/api/v1/orders", headers=headers)
    other_user = client.get("/api/v1/orders", headers=bearer("staying"))

    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert other_user.status_code == 200
    assert sent == ["EVALSHA", "EVALSHA"]


@pytest.mark.integration
def test_redis_and_memory_count_alike():
    limits = [*parse_limits("ip", "5/hour"), *parse_limits("user", "3/hour")]
    prefix = f"gw-test-{uuid.uuid4().hex[:8]}"
    keys = [limit.key(prefix, "x") for limit in limits]
    client = redis.Redis.from_url(REDIS_URL)
    stores = [MemoryLimitStore(), RedisLimitStore(client)]
    try:
        outcomes = [
            [store.hit(list(zip(keys, limits, strict=True)), None) for _ in range(5)]
            for store in stores
        ]
    finally:
        client.delete(*keys)
        client.close()

    memory, shared = ([(o.allowed, o.counts) for o in run] for run in outcomes)
    assert memory == shared
    assert [allowed for allowed, _ in memory] == [True, True, True, False, False]


def test_without_redis_limits_fall_back_to_memory_and_tokens_fail_closed(make_gateway, upstream):
    client = make_gateway(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0").test_client()

    public = client.post("/api/v1/auth/login", json={})
    protected = client.get("/api/v1/orders", headers=bearer())

    assert public.status_code == 200
    assert public.headers["RateLimit-Remaining"]
    assert protected.status_code == 503
    assert protected.mimetype == "application/problem+json"
    assert [r.path for r in upstream.received] == ["/api/v1/auth/login"]


def poll(client, times: int, headers: dict[str, str]) -> list[tuple[int, str]]:
    """Status and RateLimit-Remaining of `times` conditional GETs of one unchanged page."""
    polls = []
    for _ in range(times):
        response = client.get("/api/v1/notifications", headers={**headers, "If-None-Match": '"v1"'})
        assert response.data == b""
        polls.append((response.status_code, response.headers["RateLimit-Remaining"]))
    return polls


def test_polling_an_unchanged_page_costs_nothing_of_the_rate_limit(make_gateway):
    client = make_gateway(GATEWAY_RATE_LIMIT_USER="5/minute").test_client()
    headers = bearer("poller")
    first = client.get("/api/v1/notifications", headers=headers)

    polls = poll(client, 20, headers)
    after = client.get("/api/v1/notifications", headers=headers)

    assert first.status_code == 200
    assert first.headers["RateLimit-Remaining"] == "4"
    assert polls == [(304, "4")] * 20
    assert after.status_code == 200
    assert after.headers["RateLimit-Remaining"] == "3"


@pytest.mark.integration
def test_polling_is_free_on_the_shared_redis_counters_too(redis_gateway):
    client = redis_gateway.test_client()
    headers = bearer("poller")
    first = client.get("/api/v1/notifications", headers=headers)
    limit = int(first.headers["RateLimit-Limit"])

    polls = poll(client, 10, headers)

    assert polls == [(304, str(limit - 1))] * 10
    assert client.get("/api/v1/orders", headers=headers).headers["RateLimit-Remaining"] == str(
        limit - 2
    )


def test_a_refund_never_touches_a_later_window():
    limit = parse_limits("user", "5/minute")[0]
    clock = Clock(1_800_000_000)
    store = MemoryLimitStore(clock=clock)
    checks = [(limit.key("p", "late"), limit)]
    counted = store.hit(checks, None)
    clock.now += 60
    store.hit(checks, None)

    store.refund(checks, counted.now_ms)

    assert store.hit(checks, None).counts[0].current == 2
