"""The gateway's Redis ACL user (deploy/redis/gateway.acl) on the real Redis: what the gateway
runs works, and nothing else does."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from gateway.ratelimit import Limit, RedisLimitStore
from gateway.revocation import RedisRevocationStore, redis_client

from .conftest import ROOT

pytestmark = pytest.mark.integration

ACL_FILE = ROOT / "deploy" / "redis" / "gateway.acl"
TEST_REDIS = "redis://127.0.0.1:6379/0"
PREFIX = "gateway"  # GATEWAY_REDIS_PREFIX's default, which the ACL's key pattern names


def acl_rules() -> list[str]:
    """The rules of the file, as compose passes them to redis-server."""
    return ACL_FILE.read_text().split()


@pytest.fixture
def gateway_redis() -> Iterator[Any]:
    """A client logged in as a throwaway user holding the gateway's rules; both removed after."""
    admin = redis.Redis.from_url(TEST_REDIS)
    name, password = f"gateway-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{password}", *acl_rules())
    client = redis_client(f"redis://{name}:{password}@127.0.0.1:6379/0")
    try:
        yield client
    finally:
        client.close()
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()


@pytest.fixture
def user_id() -> Iterator[str]:
    """A user of this test alone; its keys are deleted after."""
    user = uuid.uuid4().hex
    yield user
    admin = redis.Redis.from_url(TEST_REDIS)
    for key in admin.scan_iter(f"{PREFIX}:*{user}"):
        admin.delete(key)
    admin.close()


def test_the_gateway_user_runs_the_revocation_and_rate_limit_scripts(
    gateway_redis: Any, user_id: str
) -> None:
    revocations = RedisRevocationStore(gateway_redis, prefix=PREFIX, ttl_seconds=60)
    limits = RedisLimitStore(gateway_redis)
    limit = Limit("user", 2, 60_000, "2/minute")
    checks = [(limit.key(PREFIX, user_id), limit)]

    assert gateway_redis.ping()
    revocations.revoke(user_id, 1700000000.0)
    assert revocations.revoked_at(user_id) == 1700000000.0
    outcomes = [limits.hit(checks, revocations.key(user_id)) for _ in range(3)]

    assert [outcome.allowed for outcome in outcomes] == [True, True, False]
    assert outcomes[0].revoked_at == 1700000000.0


@pytest.mark.parametrize(
    "what",
    [
        lambda client: client.get("orders:anything"),
        lambda client: client.set("session:1", "x"),
        lambda client: client.keys("*"),
        lambda client: client.flushall(),
        lambda client: client.config_get("*"),
        lambda client: client.eval("return 1", 0),
        lambda client: client.publish("events", "x"),
    ],
    ids=["other keys", "writes elsewhere", "KEYS", "FLUSHALL", "CONFIG", "EVAL", "PUBLISH"],
)
def test_the_gateway_user_may_do_nothing_else(
    gateway_redis: Any, what: Callable[[Any], object]
) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        what(gateway_redis)
