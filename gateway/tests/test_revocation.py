"""A deactivated user's still-valid tokens are refused; tokens issued later are not."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime

import pytest

from gateway.revocation import (
    BroadcastListener,
    MemoryRevocationStore,
    RedisRevocationStore,
    redis_client,
    user_deactivated_handler,
)
from gateway.tests.conftest import bearer
from shared.events import InvalidEvent, new_event
from shared.messaging import Publisher
from shared.testing import free_port, wait_for


def deactivated(user_id: object, at: float | None = None):
    event = new_event("user.deactivated", "/auth", {"user_id": user_id}, subject=str(user_id))
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
