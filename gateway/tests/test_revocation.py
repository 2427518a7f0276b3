"""A deactivated user's still-valid tokens are refused; tokens issued later are not."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
import redis

from gateway.revocation import (
    BroadcastListener,
    MemoryRevocationStore,
    RedisRevocationStore,
    redis_client,
    user_deactivated_handler,
)
from gateway.tests.conftest import bearer
from shared import contracts
from shared.events import InvalidEvent, new_event
from shared.messaging import Publisher, dlq_name, queue_name
from tests.support import (
    create_vhost,
    delete_vhost,
    free_port,
    spawn,
    stop_process,
    wait_for,
)
from tests.support.nodes import RedisNode

REPO = Path(__file__).resolve().parents[2]


def deactivated(user_id: object, at: float | None = None, source: str = "/auth"):
    # Built by hand (not contracts.build) so that tests can send what auth never would.
    event = new_event(
        "user.deactivated",
        source,
        {"user_id": user_id, "version": 1},
        subject=str(user_id),
        dataschema=contracts.dataschema("user.deactivated", 1),
    )
    if at is not None:
        event = dataclasses.replace(event, time=datetime.fromtimestamp(at, UTC))
    return event


def test_a_deactivated_users_older_token_is_refused_at_the_gateway(gateway, upstream):
    client = gateway.test_client()
    headers = bearer("user-9", iat=int(time.time()) - 60)
    assert client.get("/api/v1/orders", headers=headers).status_code == 200

    user_deactivated_handler(gateway.extensions["revocations"])(deactivated("user-9"))
    response = client.get("/api/v1/orders", headers=headers)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert len(upstream.received) == 1


def test_a_token_issued_after_reactivation_is_accepted(gateway):
    client = gateway.test_client()
    user_deactivated_handler(gateway.extensions["revocations"])(
        deactivated("user-9", at=time.time() - 120)
    )

    assert client.get("/api/v1/orders", headers=bearer("user-9")).status_code == 200
    old = bearer("user-9", iat=int(time.time()) - 180)
    assert client.get("/api/v1/orders", headers=old).status_code == 401


def role_changed(user_id: str, role: str, at: float, version: int):
    event = contracts.build(
        contracts.UserRoleChangedV1(user_id=user_id, role=role, version=version)
    )
    return dataclasses.replace(event, time=datetime.fromtimestamp(at, UTC))


def test_a_demoted_admins_older_token_is_refused_and_a_newer_one_accepted(gateway, upstream):
    client = gateway.test_client()
    now = time.time()
    user_deactivated_handler(gateway.extensions["revocations"])(
        role_changed("admin-2", "user", at=now - 30, version=2)
    )

    old = bearer("admin-2", roles=["admin"], iat=int(now) - 60)
    refreshed = bearer("admin-2", roles=["user"], iat=int(now))
    assert client.get("/api/v1/orders", headers=old).status_code == 401
    assert client.get("/api/v1/orders", headers=refreshed).status_code == 200
    assert len(upstream.received) == 1


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def store(request):
    """Each revocation store the gateway may run with."""
    if request.param == "memory":
        yield MemoryRevocationStore(1020)
        return
    client = redis_client("redis://127.0.0.1:6379/0")
    store = RedisRevocationStore(client, prefix=f"gw-test-{uuid.uuid4().hex[:8]}", ttl_seconds=1020)
    try:
        yield store
    finally:
        client.delete(store.key("u"))
        client.close()


def test_role_changes_out_of_order_keep_the_latest_cut_off(store):
    handle = user_deactivated_handler(store)
    now = time.time()

    # v3 (promoted again) arrives first, then the late v2 (demoted), then v1 twice.
    handle(role_changed("u", "admin", at=now, version=3))
    handle(role_changed("u", "user", at=now - 10, version=2))
    handle(role_changed("u", "admin", at=now - 20, version=1))
    handle(role_changed("u", "admin", at=now - 20, version=1))

    assert store.revoked_at("u") == pytest.approx(now)


def test_a_redelivered_older_event_does_not_shorten_a_newer_revocation():
    store = MemoryRevocationStore(1020)
    now = time.time()

    store.revoke("u", now)
    store.revoke("u", now - 300)

    assert store.revoked_at("u") == now


def test_revocations_are_forgotten_once_no_token_could_still_be_valid():
    clock = [1_000_000.0]
    store = MemoryRevocationStore(1020, clock=lambda: clock[0])
    store.revoke("u", clock[0])

    clock[0] += 1021

    assert store.revoked_at("u") is None


def test_an_event_without_a_user_id_is_refused_and_revokes_nothing():
    store = MemoryRevocationStore(1020)

    with pytest.raises(InvalidEvent):
        user_deactivated_handler(store)(deactivated(""))

    assert store._entries == {}


def test_a_deactivation_that_does_not_come_from_auth_is_refused_and_revokes_nothing():
    store = MemoryRevocationStore(1020)

    with pytest.raises(InvalidEvent, match="must come from /auth, not '/orders'"):
        user_deactivated_handler(store)(deactivated("u-1", source="/orders"))

    assert store.revoked_at("u-1") is None


@pytest.mark.integration
def test_the_redis_store_keeps_the_latest_time_with_a_ttl():
    prefix = f"gw-test-{uuid.uuid4().hex[:8]}"
    client = redis_client("redis://127.0.0.1:6379/0")
    store = RedisRevocationStore(client, prefix=prefix, ttl_seconds=1020)
    try:
        store.revoke("u", 2000.5)
        store.revoke("u", 1000.0)

        assert store.revoked_at("u") == 2000.5
        assert store.revoked_at("someone-else") is None
        assert 1000 < client.ttl(store.key("u")) <= 1020
    finally:
        client.delete(store.key("u"))
        client.close()


def publish_when_routable(amqp_url: str, event, timeout: float = 10.0) -> None:
    """Publish with `mandatory` until a queue is bound for the event's type."""
    with Publisher(amqp_url) as publisher:
        wait_for(
            lambda: publisher.publish(event), timeout=timeout, what="a queue bound for the event"
        )


@pytest.mark.integration
def test_without_redis_each_process_hears_deactivations_on_its_own_queue(amqp_url):
    stores = [MemoryRevocationStore(1020), MemoryRevocationStore(1020)]
    listeners = [BroadcastListener(amqp_url, user_deactivated_handler(s)) for s in stores]
    for listener in listeners:
        listener.start()
    try:
        for listener in listeners:
            assert listener.ready.wait(10)

        publish_when_routable(amqp_url, deactivated("user-b"))

        deadline = time.monotonic() + 2
        while not all(s.revoked_at("user-b") for s in stores) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(s.revoked_at("user-b") for s in stores)
    finally:
        for listener in listeners:
            listener.stop()


def test_when_redis_cannot_answer_protected_requests_fail_closed(gateway, upstream):
    dead_redis = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    gateway.extensions["revocations"] = RedisRevocationStore(
        dead_redis, prefix="gw-test", ttl_seconds=1020
    )

    response = gateway.test_client().get("/api/v1/orders", headers=bearer())

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert upstream.received == []


def ready_in(amqp_url: str, queue: str) -> int:
    """Messages waiting in a queue of the broker."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)


HOLDING = "dependency unavailable; holding the event and retrying"


def records(log: Path, event_id: str, message: str) -> list[dict]:
    """The worker's JSON log records about one event with one message."""
    found = []
    # Only whole lines: the worker may be writing the last one as we read.
    for line in log.read_text().splitlines(keepends=True):
        if line.startswith("{") and line.endswith("\n"):
            record = json.loads(line)
            if record.get("event_id") == event_id and record.get("message") == message:
                found.append(record)
    return found


@pytest.mark.chaos
@pytest.mark.integration
def test_a_deactivation_during_a_redis_outage_is_recorded_once_redis_is_back(
    own_redis: RedisNode, tmp_path
):
    vhost, amqp_url = create_vhost("gateway-redis")
    prefix = f"gw-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "AMQP_URL": amqp_url,
        "REDIS_URL": own_redis.url,
        "GATEWAY_REDIS_PREFIX": prefix,
        # The retry tiers take 0.1 s; the outage lasts far longer.
        "EVENT_RETRY_DELAYS": "0.05,0.05",
        "PYTHONPATH": str(REPO),
    }
    log = tmp_path / "worker.log"
    worker = spawn([sys.executable, "-m", "gateway.worker"], log=log, env=env, cwd=REPO)
    client = redis.Redis.from_url(own_redis.url)
    try:
        publish_when_routable(amqp_url, deactivated("warm-up"), timeout=30)
        wait_for(lambda: client.get(f"{prefix}:revoked:warm-up"), timeout=15)

        own_redis.stop()
        event = deactivated("user-x")
        with Publisher(amqp_url) as publisher:
            assert publisher.publish(event)

        # The outage happened to this event: the worker tried it against the stopped Redis,
        # and more than once (held and retried, not dead-lettered).
        wait_for(
            lambda: len(records(log, event.id, HOLDING)) >= 3,
            timeout=30,
            what="the worker retrying the deactivation while Redis is down",
        )
        assert ready_in(amqp_url, dlq_name("gateway")) == 0
        own_redis.start()

        revoked = wait_for(
            lambda: client.get(f"{prefix}:revoked:user-x"),
            timeout=30,
            what="the revocation written once Redis is back",
        )
        assert float(revoked) > 0
        assert records(log, event.id, "dependency is back; event handled"), log.read_text()[-2000:]
        assert ready_in(amqp_url, dlq_name("gateway")) == 0
        assert ready_in(amqp_url, queue_name("gateway")) == 0
    finally:
        client.close()
        code = stop_process(worker)
        delete_vhost(vhost)
    assert code == 0, log.read_text()[-2000:]
