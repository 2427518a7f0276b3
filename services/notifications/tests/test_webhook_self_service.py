"""Webhook self-service: the attempt log, recover, secret rotation, test pings, auto-disable.

Outages of minutes play out without waiting: the delivery worker runs on a clock the test
moves forward (`deliver_due_once(now=...)`), the receiver answers 503 while "down".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from standardwebhooks import Webhook, WebhookVerificationError

from services.notifications import deliveries, webhooks
from services.notifications.deliveries import RetryPolicy
from services.notifications.delivery import DeliverySettings, deliver_due_once, send_job
from services.notifications.models import Delivery, Notification, WebhookEndpoint, db
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import (
    ReceivedRequest,
    TokenMaker,
    WebhookReceiver,
    committed,
    order_created,
    settings_for,
    user_registered,
)
from shared.events import Event
from tests.support import free_port

pytestmark = pytest.mark.integration

BASE = "/api/v1/notifications"
ADA, BOB = "user-ada", "user-bob"
DOWN = (503, {})
UP = (204, {})


# -- helpers ----------------------------------------------------------------------------


def _settings(app: Flask, **changes: Any) -> DeliverySettings:
    """Retries a minute apart at first (so an outage of minutes leaves them waiting)."""
    settings = settings_for(app, free_port(), NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE=True)
    policy = RetryPolicy(max_attempts=4, base_seconds=60, cap_seconds=600)
    return dataclasses.replace(settings, **{"policy": policy, **changes})


def _deliver_at(app: Flask, settings: DeliverySettings, at: datetime) -> int:
    """Passes of the delivery worker, on a clock reading `at`, until nothing is due.

    The clock never reads earlier than the real one, which stamps the rows of new events.
    """
    at = max(at, datetime.now(UTC))
    total = 0
    with app.app_context():
        while claimed := deliver_due_once(db.session(), settings, now=lambda: at):
            total += claimed
    return total


def _add_webhook(app: Flask, url: str, user: str = ADA) -> WebhookEndpoint:
    with app.app_context():
        endpoint = committed(
            webhooks.create_webhook,
            session=db.session(),
            user_id=user,
            url=url,
            event_types=["order.created"],
            description=None,
            guard=TargetGuard(allow_private=True),
            max_per_user=10,
        )
        db.session.refresh(endpoint)  # loaded after the commit, then kept detached
        db.session.expunge(endpoint)
        return endpoint


def _endpoint(app: Flask, webhook_id: Any) -> WebhookEndpoint:
    with app.app_context():
        endpoint = db.session.get(WebhookEndpoint, webhook_id)
        assert endpoint is not None
        db.session.expunge(endpoint)
        return endpoint


def _order_ids(requests: list[ReceivedRequest]) -> list[str]:
    return [json.loads(request.body)["data"]["order_id"] for request in requests]


def _recover(client: FlaskClient, tokens: TokenMaker, hook_id: Any, since: datetime, user=ADA):
    return client.post(
        f"{BASE}/webhooks/{hook_id}/recover",
        json={"since": since.isoformat()},
        headers=tokens.headers(user),
    )


@pytest.fixture
def ada(consume: Callable[[Event], None]) -> None:
    """Ada is known and her address unverified: her orders make webhooks only, no mail."""
    consume(user_registered(ADA))


# -- recover ----------------------------------------------------------------------------


@pytest.mark.usefixtures("ada")
def test_a_receiver_down_for_ten_minutes_gets_every_missed_event_once_after_recover(
    app: Flask,
    client: FlaskClient,
    tokens: TokenMaker,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    settings = _settings(app, webhook_disable_after=timedelta(minutes=5))
    start = datetime.now(UTC)
    webhook_receiver.responses["/hook"] = DOWN
    orders: list[str] = []
    for minute in range(10):  # one order a minute while the receiver is down
        event = order_created(ADA)
        orders.append(event.data["order_id"])
        consume(event)
        _deliver_at(app, settings, start + timedelta(minutes=minute))
    down_requests = len(webhook_receiver.requests)
    assert down_requests >= 5  # every event was tried while it was down
    assert not _endpoint(app, endpoint.id).enabled  # failing for 5 minutes: disabled
    with app.app_context():
        statuses = set(db.session.scalars(sa.select(Delivery.status)))
    assert statuses <= {"pending", "failed", "cancelled"} and "sent" not in statuses

    webhook_receiver.responses["/hook"] = UP
    recovered = _recover(client, tokens, endpoint.id, start - timedelta(minutes=1))
    assert recovered.status_code == 202
    assert recovered.get_json() == {"queued": 10}
    after = start + timedelta(minutes=10)
    _deliver_at(app, settings, after)
    # Recovering again, and the retries the outage had scheduled coming due: nothing new.
    assert _recover(client, tokens, endpoint.id, start).get_json() == {"queued": 0}
    _deliver_at(app, settings, after + timedelta(hours=2))

    delivered = webhook_receiver.requests[down_requests:]
    assert sorted(_order_ids(delivered)) == sorted(orders)  # each one, exactly once
    for request in delivered:
        Webhook(endpoint.secret).verify(request.body, request.headers)
    assert _endpoint(app, endpoint.id).enabled
    with app.app_context():
        assert set(db.session.scalars(sa.select(Delivery.status))) == {"sent"}


@pytest.mark.usefixtures("ada")
def test_recover_leaves_a_delivery_on_the_wire_alone_so_it_is_sent_once(
    app: Flask,
    client: FlaskClient,
    tokens: TokenMaker,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    settings = _settings(app)
    start = datetime.now(UTC)
    webhook_receiver.responses["/hook"] = DOWN
    first, second = order_created(ADA), order_created(ADA)
    consume(first)
    consume(second)
    _deliver_at(app, settings, start)  # both fail; retries in a minute or so
    down_requests = len(webhook_receiver.requests)
    webhook_receiver.responses["/hook"] = UP
    # A worker claims one of them for its retry, and is still sending it...
    with app.app_context():
        [job] = committed(
            deliveries.claim_due_deliveries,
            session=db.session(),
            now=start + timedelta(minutes=5),
            limit=1,
            lease_seconds=120,
            max_attempts=settings.policy.max_attempts,
        )

    # ...when its owner recovers, twice: only the other one is queued again.
    assert _recover(client, tokens, endpoint.id, start - timedelta(minutes=1)).get_json() == {
        "queued": 1
    }
    assert _recover(client, tokens, endpoint.id, start - timedelta(minutes=1)).get_json() == {
        "queued": 1
    }
    with app.app_context():
        session = db.session()
        moment = start + timedelta(minutes=5)
        assert committed(
            deliveries.renew_claim, session=session, job=job, now=moment, lease_seconds=120
        )
        send_job(job, settings)  # the claiming worker's send goes through
        committed(deliveries.record_delivery_sent, session=session, job=job, now=moment)
    _deliver_at(app, settings, start + timedelta(minutes=5))
    _deliver_at(app, settings, start + timedelta(hours=3))  # every old retry time is past

    delivered = _order_ids(webhook_receiver.requests[down_requests:])
    assert sorted(delivered) == sorted([first.data["order_id"], second.data["order_id"]])
    assert _recover(client, tokens, endpoint.id, start).get_json() == {"queued": 0}


@pytest.mark.usefixtures("ada")
def test_recover_sends_nothing_from_before_since_or_already_sent(
    app: Flask,
    client: FlaskClient,
    tokens: TokenMaker,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    settings = _settings(app, policy=RetryPolicy(max_attempts=1, base_seconds=1, cap_seconds=1))
    start = datetime.now(UTC)
    webhook_receiver.responses["/hook"] = DOWN
    consume(order_created(ADA))
    _deliver_at(app, settings, start)  # failed for good (one attempt)
    webhook_receiver.responses["/hook"] = UP
    consume(order_created(ADA))
    _deliver_at(app, settings, start)  # sent
    assert len(webhook_receiver.requests) == 2

    assert _recover(client, tokens, endpoint.id, datetime.now(UTC)).get_json() == {"queued": 0}
    assert _recover(client, tokens, endpoint.id, start).get_json() == {"queued": 1}
    _deliver_at(app, settings, datetime.now(UTC) + timedelta(seconds=1))
    assert len(webhook_receiver.requests) == 3
    assert _order_ids(webhook_receiver.requests[2:]) == _order_ids(webhook_receiver.requests[:1])


@pytest.mark.usefixtures("ada")
def test_recover_since_a_time_in_the_future_queues_nothing(
    app: Flask,
    client: FlaskClient,
    tokens: TokenMaker,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    settings = _settings(app, policy=RetryPolicy(max_attempts=1, base_seconds=1, cap_seconds=1))
    webhook_receiver.responses["/hook"] = DOWN
    consume(order_created(ADA))
    _deliver_at(app, settings, datetime.now(UTC))  # failed for good (one attempt)
    webhook_receiver.responses["/hook"] = UP

    answer = _recover(client, tokens, endpoint.id, datetime(2999, 1, 1, tzinfo=UTC))

    assert answer.status_code == 202 and answer.get_json() == {"queued": 0}
    _deliver_at(app, settings, datetime.now(UTC) + timedelta(seconds=1))
    assert len(webhook_receiver.requests) == 1  # the failed one is not sent again


# -- the attempt log --------------------------------------------------------------------


@pytest.mark.usefixtures("ada")
def test_the_attempt_log_pages_newest_first_and_filters_by_outcome(
    app: Flask,
    client: FlaskClient,
    tokens: TokenMaker,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    settings = _settings(app)
    start = datetime.now(UTC)
    webhook_receiver.responses["/hook"] = DOWN
    for _ in range(3):
        consume(order_created(ADA))
    _deliver_at(app, settings, start)  # three failures
    webhook_receiver.responses["/hook"] = UP
    _deliver_at(app, settings, start + timedelta(minutes=5))  # three retries succeed
    url = f"{BASE}/webhooks/{endpoint.id}/attempts"
    headers = tokens.headers(ADA)

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(url, query_string=query, headers=headers)
        assert page.status_code == 200
        seen += page.get_json()["items"]
        cursor = page.get_json()["next_cursor"]
        if cursor is None:
            break
    assert [a["outcome"] for a in seen] == ["succeeded"] * 3 + ["failed"] * 3
    assert len({a["id"] for a in seen}) == 6
    failed, succeeded = seen[-1], seen[0]
    assert failed["status_code"] == 503 and failed["error"].startswith("HTTP 503")
    assert failed["next_retry_at"] is not None and failed["attempt"] == 1
    assert succeeded["status_code"] == 204 and succeeded["next_retry_at"] is None
    assert succeeded["attempt"] == 2 and succeeded["event_type"] == "order.created"
    assert all(a["duration_ms"] >= 0 for a in seen)
    assert {a["delivery_id"] for a in seen if a["outcome"] == "failed"} == {
        a["delivery_id"] for a in seen if a["outcome"] == "succeeded"
    }

    only_failed = client.get(url, query_string={"outcome": "failed"}, headers=headers)
    assert [a["outcome"] for a in only_failed.get_json()["items"]] == ["failed"] * 3
    again = client.get(
        url,
        query_string={"outcome": "failed"},
        headers={**headers, "If-None-Match": only_failed.headers["ETag"]},
    )
    assert again.status_code == 304
    bad = client.get(url, query_string={"outcome": "maybe"}, headers=headers)
    assert bad.status_code == 422 and bad.mimetype == "application/problem+json"


# -- secret rotation --------------------------------------------------------------------


@pytest.mark.usefixtures("ada")
def test_during_a_rotation_receivers_holding_either_secret_verify(
    app: Flask,
    client: FlaskClient,
    tokens: TokenMaker,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    old = endpoint.secret
    settings = _settings(app)
    rotated = client.post(
        f"{BASE}/webhooks/{endpoint.id}/rotate-secret",
        json={"grace_period_seconds": 3600},
        headers=tokens.headers(ADA),
    )
    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    new = rotated.get_json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert rotated.get_json()["previous_secret_expires_at"] is not None

    consume(order_created(ADA))
    _deliver_at(app, settings, datetime.now(UTC))
    [during] = webhook_receiver.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(during.body, during.headers)["type"] == "order.created"
    assert Webhook(new).verify(during.body, during.headers)["type"] == "order.created"
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_webhook_secret()).verify(during.body, during.headers)

    # Once the grace period is over, only the new secret signs.
    consume(order_created(ADA))
    _deliver_at(app, settings, datetime.now(UTC) + timedelta(hours=2))
    after = webhook_receiver.requests[1]
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)

    # No grace at all: the secret before stops signing at once.
    newest = client.post(
        f"{BASE}/webhooks/{endpoint.id}/rotate-secret",
        json={"grace_period_seconds": 0},
        headers=tokens.headers(ADA),
    ).get_json()["secret"]
    consume(order_created(ADA))
    _deliver_at(app, settings, datetime.now(UTC))
    last = webhook_receiver.requests[2]
    Webhook(newest).verify(last.body, last.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(last.body, last.headers)


@pytest.mark.parametrize(
    "body", [{"grace_period_seconds": -1}, {"grace_period_seconds": 8 * 86400}, {"secret": "x"}]
)
def test_bad_rotation_bodies_are_422_and_change_nothing(
    app: Flask, client: FlaskClient, tokens: TokenMaker, body: dict[str, Any]
) -> None:
    endpoint = _add_webhook(app, "http://127.0.0.1:9/hook")
    answer = client.post(
        f"{BASE}/webhooks/{endpoint.id}/rotate-secret", json=body, headers=tokens.headers(ADA)
    )
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
    assert _endpoint(app, endpoint.id).secret == endpoint.secret


# -- test pings -------------------------------------------------------------------------


def test_a_ping_is_sent_signed_once_and_shows_in_the_attempt_log(
    app: Flask, client: FlaskClient, tokens: TokenMaker, webhook_receiver: WebhookReceiver
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    settings = _settings(app)
    pinged = client.post(f"{BASE}/webhooks/{endpoint.id}/ping", headers=tokens.headers(ADA))
    assert pinged.status_code == 202
    assert pinged.get_json()["status"] == "pending"

    _deliver_at(app, settings, datetime.now(UTC))
    [request] = webhook_receiver.requests
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload["type"] == "webhook.ping"
    assert payload["data"] == {"webhook_id": str(endpoint.id)}
    assert request.headers["webhook-id"] == pinged.get_json()["id"]
    log = client.get(f"{BASE}/webhooks/{endpoint.id}/attempts", headers=tokens.headers(ADA))
    [attempt] = log.get_json()["items"]
    assert (attempt["event_type"], attempt["outcome"], attempt["status_code"]) == (
        "webhook.ping",
        "succeeded",
        204,
    )
    # A ping is no notification of the user's.
    listed = client.get(f"{BASE}", headers=tokens.headers(ADA)).get_json()["items"]
    assert listed == []


def test_a_failed_ping_is_not_retried(
    app: Flask, client: FlaskClient, tokens: TokenMaker, webhook_receiver: WebhookReceiver
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    webhook_receiver.responses["/hook"] = DOWN
    settings = _settings(app)
    client.post(f"{BASE}/webhooks/{endpoint.id}/ping", headers=tokens.headers(ADA))

    _deliver_at(app, settings, datetime.now(UTC))
    _deliver_at(app, settings, datetime.now(UTC) + timedelta(hours=2))

    assert len(webhook_receiver.requests) == 1
    log = client.get(f"{BASE}/webhooks/{endpoint.id}/attempts", headers=tokens.headers(ADA))
    [attempt] = log.get_json()["items"]
    assert (attempt["outcome"], attempt["status_code"], attempt["next_retry_at"]) == (
        "failed",
        503,
        None,
    )


# -- auto-disable -----------------------------------------------------------------------


@pytest.mark.usefixtures("ada")
def test_an_endpoint_failing_for_the_configured_time_is_disabled_and_its_owner_told(
    app: Flask,
    client: FlaskClient,
    tokens: TokenMaker,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    settings = _settings(app, webhook_disable_after=timedelta(hours=1))
    webhook_receiver.responses["/hook"] = DOWN
    start = datetime.now(UTC)
    consume(order_created(ADA))
    _deliver_at(app, settings, start)
    _deliver_at(app, settings, start + timedelta(minutes=50))  # failing for 50 minutes
    shown = client.get(f"{BASE}/webhooks/{endpoint.id}", headers=tokens.headers(ADA)).get_json()
    assert shown["enabled"] is True and shown["failing_since"] is not None

    _deliver_at(app, settings, start + timedelta(minutes=70))  # and now for over an hour
    shown = client.get(f"{BASE}/webhooks/{endpoint.id}", headers=tokens.headers(ADA)).get_json()
    assert shown["enabled"] is False and shown["disabled_at"] is not None
    notes = client.get(BASE, headers=tokens.headers(ADA)).get_json()["items"]
    [note] = [n for n in notes if n["event_type"] == "webhook.disabled"]
    assert note["subject"] == {
        "type": "webhook",
        "id": str(endpoint.id),
        "path": f"{BASE}/webhooks/{endpoint.id}",
    }
    assert client.get(BASE, headers=tokens.headers(BOB)).get_json()["items"] == []

    # Disabled: a new event is kept for `recover`, not sent; nor are old retries.
    requests_before = len(webhook_receiver.requests)
    consume(order_created(ADA))
    _deliver_at(app, settings, start + timedelta(hours=5))
    assert len(webhook_receiver.requests) == requests_before


@pytest.mark.usefixtures("ada")
def test_a_success_within_the_period_keeps_the_endpoint_enabled(
    app: Flask, consume: Callable[[Event], None], webhook_receiver: WebhookReceiver
) -> None:
    endpoint = _add_webhook(app, webhook_receiver.url("/hook"))
    settings = _settings(app, webhook_disable_after=timedelta(hours=1))
    start = datetime.now(UTC)
    webhook_receiver.responses["/hook"] = DOWN
    consume(order_created(ADA))
    _deliver_at(app, settings, start)
    webhook_receiver.responses["/hook"] = UP
    consume(order_created(ADA))
    _deliver_at(app, settings, start + timedelta(minutes=30))  # both go through
    assert _endpoint(app, endpoint.id).failing_since is None
    webhook_receiver.responses["/hook"] = DOWN
    consume(order_created(ADA))
    _deliver_at(app, settings, start + timedelta(minutes=65))
    _deliver_at(app, settings, start + timedelta(minutes=80))

    assert _endpoint(app, endpoint.id).enabled  # failing for 15 minutes only
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count()).where(Notification.event_type == "webhook.disabled")
            )
            == 0
        )


# -- only the owner ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("get", "/attempts", None),
        ("post", "/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("post", "/rotate-secret", {}),
        ("post", "/ping", None),
    ],
)
def test_another_user_s_endpoint_looks_missing_and_stays_unchanged(
    app: Flask,
    client: FlaskClient,
    tokens: TokenMaker,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    endpoint = _add_webhook(app, "http://127.0.0.1:9/hook")
    url = f"{BASE}/webhooks/{endpoint.id}{suffix}"

    answer = getattr(client, method)(url, json=body, headers=tokens.headers(BOB))

    assert answer.status_code == 404 and answer.mimetype == "application/problem+json"
    assert _endpoint(app, endpoint.id).secret == endpoint.secret
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0
    mine = getattr(client, method)(url, json=body, headers=tokens.headers(ADA))
    assert mine.status_code in (200, 202)


@pytest.mark.parametrize(
    "body",
    [
        {"since": "2026-01-01T00:00:00"},  # no offset
        {"since": "yesterday"},
        {},
        {"since": "2026-01-01T00:00:00Z", "also": 1},
    ],
)
def test_bad_recover_bodies_are_422_problems(
    app: Flask, client: FlaskClient, tokens: TokenMaker, body: dict[str, Any]
) -> None:
    endpoint = _add_webhook(app, "http://127.0.0.1:9/hook")
    answer = client.post(
        f"{BASE}/webhooks/{endpoint.id}/recover", json=body, headers=tokens.headers(ADA)
    )
    assert answer.status_code == 422 and answer.mimetype == "application/problem+json"
