"""Webhook self-service calls racing each other on PostgreSQL, each in its own session.

Two `recover`s of one endpoint update the same deliveries; they take turns instead of
deadlocking (which PostgreSQL ends by aborting one: a 500), and every missed event is
still sent once. So do recovers beside a secret rotation, a ping and the delivery worker.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from services.notifications import webhooks
from services.notifications.deliveries import RetryPolicy
from services.notifications.delivery import DeliverySettings, deliver_due_once
from services.notifications.models import db
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import (
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
ADA = "user-ada"
MISSED = 30


def _deliver_all(app: Flask, settings: DeliverySettings, at: datetime) -> None:
    """Passes of the delivery worker on a clock reading `at` (never before now) until idle."""
    at = max(at, datetime.now(UTC))
    with app.app_context():
        while deliver_due_once(db.session(), settings, now=lambda: at):
            pass


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run `calls` in threads released together; their answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        answers[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(answer is not None for answer in answers), "a call did not finish"
    return [answer for answer in answers if answer is not None]


def _missed_events(
    app: Flask, consume: Callable[[Event], None], receiver: WebhookReceiver
) -> tuple[Any, DeliverySettings, datetime, list[str]]:
    """An endpoint of Ada's that missed MISSED events (each tried once, failed for good)."""
    consume(user_registered(ADA))
    with app.app_context():
        endpoint = committed(
            webhooks.create_webhook,
            session=db.session(),
            user_id=ADA,
            url=receiver.url("/hook"),
            event_types=["order.created"],
            description=None,
            guard=TargetGuard(allow_private=True),
            max_per_user=10,
        )
        hook_id = endpoint.id
    settings = dataclasses.replace(
        settings_for(app, free_port(), NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE=True),
        policy=RetryPolicy(max_attempts=1, base_seconds=60, cap_seconds=600),
    )
    start = datetime.now(UTC)
    receiver.responses["/hook"] = (503, {})
    orders = []
    for _ in range(MISSED):
        event = order_created(ADA)
        orders.append(event.data["order_id"])
        consume(event)
    _deliver_all(app, settings, datetime.now(UTC))
    assert len(receiver.requests) == MISSED
    receiver.responses["/hook"] = (204, {})
    return hook_id, settings, start, orders


def _post(app: Flask, tokens: TokenMaker, path: str, body: Any = None) -> TestResponse:
    """A request of Ada's from a client of its own: its own request context and session."""
    return app.test_client().post(f"{BASE}{path}", json=body, headers=tokens.headers(ADA))


def _events_sent(receiver: WebhookReceiver) -> list[str]:
    """The order ids of the events the receiver accepted (test pings left out)."""
    bodies = [json.loads(request.body) for request in receiver.requests]
    return [body["data"]["order_id"] for body in bodies if body["type"] == "order.created"]


def test_two_recovers_at_once_both_succeed_and_send_each_missed_event_once(
    app: Flask,
    tokens: TokenMaker,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
) -> None:
    hook_id, settings, start, orders = _missed_events(app, consume, webhook_receiver)
    since = {"since": (start - timedelta(minutes=1)).isoformat()}

    def recover() -> TestResponse:
        return _post(app, tokens, f"/webhooks/{hook_id}/recover", since)

    answers = _at_once([recover, recover])
    assert [answer.status_code for answer in answers] == [202, 202]
    # Whichever came second found the first's work pending and queued it again, not twice.
    assert [answer.get_json() for answer in answers] == [{"queued": MISSED}] * 2
    _deliver_all(app, settings, datetime.now(UTC) + timedelta(seconds=1))
    _deliver_all(app, settings, datetime.now(UTC) + timedelta(hours=2))

    sent = _events_sent(webhook_receiver)[MISSED:]
    assert sorted(sent) == sorted(orders)


def test_recovers_beside_a_rotation_a_ping_and_the_worker_all_succeed(
    app: Flask,
    tokens: TokenMaker,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
) -> None:
    hook_id, settings, start, orders = _missed_events(app, consume, webhook_receiver)
    since = {"since": (start - timedelta(minutes=1)).isoformat()}

    def deliver() -> int:
        with app.app_context():
            return deliver_due_once(db.session(), settings)

    answers = _at_once(
        [
            lambda: _post(app, tokens, f"/webhooks/{hook_id}/recover", since),
            lambda: _post(app, tokens, f"/webhooks/{hook_id}/recover", since),
            lambda: _post(app, tokens, f"/webhooks/{hook_id}/rotate-secret", {}),
            lambda: _post(app, tokens, f"/webhooks/{hook_id}/ping"),
            deliver,
            deliver,
        ]
    )
    assert [answer.status_code for answer in answers[:4]] == [202, 202, 200, 202]
    _deliver_all(app, settings, datetime.now(UTC) + timedelta(seconds=1))
    _deliver_all(app, settings, datetime.now(UTC) + timedelta(hours=2))

    sent = _events_sent(webhook_receiver)[MISSED:]
    assert sorted(sent) == sorted(orders)  # each missed event once, the ping aside
