"""Deliveries through a real SMTP server and a real HTTP receiver, on the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import sessionmaker
from standardwebhooks import Webhook, WebhookVerificationError

from services.notifications import deliveries, webhooks
from services.notifications.delivery import deliver_due_once, run_delivery_loop
from services.notifications.models import Contact, Delivery, db
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import (
    Behaviour,
    MisbehavingServer,
    SmtpSink,
    TokenMaker,
    WebhookReceiver,
    committed,
    deliver,
    drip_headers,
    now_utc,
    order_created,
    settings_for,
    user_deactivated,
    user_email_verified,
    user_registered,
)
from shared.context import child_traceparent, trace_id_of
from shared.events import Event
from shared.observability import configure_logging
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration

ADA = "user-ada"


def _only(app: Flask, channel: str) -> Delivery:
    with app.app_context():
        [delivery] = db.session.scalars(sa.select(Delivery).where(Delivery.channel == channel))
        db.session.expunge_all()
        return delivery


def _add_webhook(app: Flask, url: str, event_types: tuple[str, ...] = ("order.created",)) -> str:
    """Register an endpoint (private targets allowed) and return its secret."""
    with app.app_context():
        endpoint = committed(
            webhooks.create_webhook,
            session=db.session(),
            user_id=ADA,
            url=url,
            event_types=list(event_types),
            description=None,
            guard=TargetGuard(allow_private=True),
            max_per_user=10,
        )
        return endpoint.secret


# -- email ------------------------------------------------------------------------------


def test_a_welcome_email_is_sent_once_with_the_delivery_id_as_message_id(
    app: Flask, consume: Callable[[Event], None], smtp_sink: SmtpSink
) -> None:
    consume(user_registered(ADA, "ada@example.com", "Ada"))
    consume(user_email_verified(ADA))  # the address owner followed the link
    settings = settings_for(app, smtp_sink.port)

    assert deliver(app, settings) == 1
    assert deliver(app, settings) == 0  # nothing left to do

    delivery = _only(app, "email")
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert delivery.sent_at is not None
    [message] = smtp_sink.messages()
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Welcome to Flask Suite"
    assert message["Message-ID"] == f"<{delivery.id}@flask-suite.local>"
    assert "Hello Ada," in message.get_body(("plain",)).get_content()
    assert "<p>Hello Ada,</p>" in message.get_body(("html",)).get_content()


def test_mail_waits_out_an_smtp_outage_and_goes_out_when_the_server_returns(
    app: Flask, consume: Callable[[Event], None], smtp_sink: SmtpSink
) -> None:
    smtp_sink.stop()
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    settings = settings_for(app, smtp_sink.port, NOTIFICATIONS_MAX_ATTEMPTS=1000)
    with app.app_context():
        session_factory = sessionmaker(bind=db.engine)
    stop = threading.Event()
    worker = threading.Thread(target=run_delivery_loop, args=(session_factory, settings, stop))
    worker.start()
    try:
        wait_for(lambda: _only(app, "email").attempts >= 2, timeout=10)
        assert smtp_sink.messages() == []
        smtp_sink.start()
        delivery = wait_for(lambda: (d := _only(app, "email")).status == "sent" and d, timeout=10)
    finally:
        stop.set()
        worker.join(timeout=10)

    assert delivery.attempts > 1
    assert "SMTP" in (delivery.last_error or "")  # what the failed attempts ran into
    assert len(smtp_sink.messages()) == 1


def test_an_email_that_keeps_failing_is_marked_failed_and_the_user_can_see_it(
    app: Flask, client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    settings = settings_for(app, free_port(), NOTIFICATIONS_MAX_ATTEMPTS=3)  # no server there

    for _ in range(3):
        wait_for(lambda: deliver(app, settings), timeout=10)

    [item] = client.get("/api/v1/notifications", headers=tokens.headers(ADA)).get_json()["items"]
    [delivery] = item["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("failed", 3)
    assert "SMTP" in delivery["last_error"]
    assert delivery["next_attempt_at"] is None
    assert deliver(app, settings) == 0


def test_an_order_event_for_a_user_not_known_yet_waits_for_the_address(
    app: Flask, consume: Callable[[Event], None], smtp_sink: SmtpSink
) -> None:
    order = order_created(ADA)
    consume(order)  # orders' event overtook auth's user.registered
    settings = settings_for(app, smtp_sink.port)
    deliver(app, settings)
    waiting = _only(app, "email")
    assert waiting.status == "pending" and "no email address" in (waiting.last_error or "")

    consume(user_registered(ADA, "ada@example.com"))

    consume(user_email_verified(ADA))  # the address owner followed the link
    wait_for(lambda: deliver(app, settings) == 0 and len(smtp_sink.messages()) == 2, timeout=10)

    subjects = sorted((m["To"], m["Subject"]) for m in smtp_sink.messages())
    assert subjects == [
        ("ada@example.com", "We received your order " + order.data["order_id"][:8]),
        ("ada@example.com", "Welcome to Flask Suite"),
    ]


# -- webhooks ---------------------------------------------------------------------------


def _webhook_settings(app: Flask):
    # Mail goes nowhere in these tests; the receiver lives on 127.0.0.1, hence allowed.
    return settings_for(app, free_port(), NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE=True)


def test_a_webhook_arrives_signed_so_that_standard_webhooks_verifies_it(
    app: Flask, consume: Callable[[Event], None], webhook_receiver: WebhookReceiver
) -> None:
    secret = _add_webhook(app, webhook_receiver.url("/hook"))
    order = order_created(ADA, total_cents=2500)
    consume(order)

    deliver(app, _webhook_settings(app))

    [request] = webhook_receiver.requests
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "order.created"
    assert payload["data"]["order_id"] == order.data["order_id"]
    delivery = _only(app, "webhook")
    assert delivery.status == "sent"
    assert request.headers["webhook-id"] == str(delivery.id)
    tampered = request.body.replace(b'"total_cents":2500', b'"total_cents":1')
    assert tampered != request.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, request.headers)


def test_a_webhook_retry_sends_the_same_id_and_body(
    app: Flask, consume: Callable[[Event], None], webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.responses["/flaky"] = (503, {})
    _add_webhook(app, webhook_receiver.url("/flaky"))
    consume(order_created(ADA))
    settings = _webhook_settings(app)

    deliver(app, settings)
    assert "HTTP 503" in (_only(app, "webhook").last_error or "")
    del webhook_receiver.responses["/flaky"]
    wait_for(lambda: deliver(app, settings) and _only(app, "webhook").status == "sent", timeout=10)

    first, second = webhook_receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert _only(app, "webhook").attempts == 2


def test_a_target_that_drips_its_answer_costs_one_bounded_attempt_and_is_retried_later(
    app: Flask,
    consume: Callable[[Event], None],
    misbehaving: Callable[[Behaviour], MisbehavingServer],
) -> None:
    server = misbehaving(drip_headers)  # a header line every 0.2 s, for a minute
    _add_webhook(app, f"http://127.0.0.1:{server.port}/hook")
    consume(order_created(ADA))
    settings = settings_for(
        app,
        free_port(),
        NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE=True,
        NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS=1.0,
    )

    started = time.monotonic()
    deliver(app, settings)
    took = time.monotonic() - started

    delivery = _only(app, "webhook")
    assert took < 1.0 + 3.0  # the deadline, and some slack; not the minute of dripping
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "no complete answer within 1 s" in (delivery.last_error or "")
    wait_for(lambda: deliver(app, settings) and _only(app, "webhook").attempts == 2, timeout=10)


def test_a_redirecting_webhook_is_a_failed_attempt_and_is_not_followed(
    app: Flask, consume: Callable[[Event], None], webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.responses["/moved"] = (302, {"Location": webhook_receiver.url("/elsewhere")})
    _add_webhook(app, webhook_receiver.url("/moved"))
    consume(order_created(ADA))

    deliver(app, _webhook_settings(app))

    delivery = _only(app, "webhook")
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "HTTP 302" in (delivery.last_error or "")
    assert [request.path for request in webhook_receiver.requests] == ["/moved"]


def test_a_webhook_target_that_resolves_to_loopback_is_refused_at_delivery_time(
    app: Flask,
    consume: Callable[[Event], None],
    webhook_receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Registered while private targets were allowed (or while its DNS said otherwise).
    _add_webhook(app, webhook_receiver.url("/hook", host="localhost"))
    consume(order_created(ADA))

    deliver(app, settings_for(app, free_port()))  # the default: private targets refused

    delivery = _only(app, "webhook")
    # The owner sees that it was refused, not what localhost resolves to; our log does.
    assert delivery.attempts == 1
    assert delivery.last_error == f"refused: {webhooks.REFUSED_TARGET}"
    assert any("loopback" in getattr(r, "reason", "") for r in caplog.records)
    assert webhook_receiver.requests == []


def test_a_deleted_webhook_gets_nothing_more(
    app: Flask, consume: Callable[[Event], None], webhook_receiver: WebhookReceiver
) -> None:
    _add_webhook(app, webhook_receiver.url("/hook"))
    consume(order_created(ADA))
    with app.app_context():
        [endpoint_id] = db.session.scalars(sa.text("SELECT id FROM webhook_endpoints"))
        committed(
            webhooks.delete_webhook, session=db.session(), user_id=ADA, webhook_id=endpoint_id
        )

    deliver(app, _webhook_settings(app))

    assert _only(app, "webhook").status == "cancelled"
    assert webhook_receiver.requests == []


# -- claiming ---------------------------------------------------------------------------


def test_a_claimed_delivery_is_left_alone_until_its_lease_runs_out(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link

    def claim(after_seconds: float = 0) -> list[deliveries.DeliveryJob]:
        with app.app_context():
            return committed(
                deliveries.claim_due_deliveries,
                session=db.session(),
                now=now_utc() + timedelta(seconds=after_seconds),
                limit=10,
                lease_seconds=60,
                max_attempts=5,
            )

    first, second, after_lease = claim(), claim(), claim(after_seconds=61)

    assert [job.attempt for job in first] == [1]
    assert second == []
    assert [job.attempt for job in after_lease] == [2]


def test_workers_skip_a_row_another_worker_holds_instead_of_waiting(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    with app.app_context():
        holder = sessionmaker(bind=db.engine)()
        try:
            holder.execute(sa.text("SELECT id FROM deliveries FOR UPDATE"))  # another worker
            jobs = committed(
                deliveries.claim_due_deliveries,
                session=db.session(),
                now=now_utc(),
                limit=10,
                lease_seconds=60,
                max_attempts=5,
            )
        finally:
            holder.rollback()
            holder.close()

    assert jobs == []


def test_a_claim_that_another_worker_took_over_is_not_renewed_and_so_not_sent(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    with app.app_context():
        session = db.session()
        [ours] = committed(
            deliveries.claim_due_deliveries,
            session=session,
            now=now_utc(),
            limit=10,
            lease_seconds=1,
            max_attempts=5,
        )
        # Our lease ran out while earlier sends of the batch went on; another worker claimed it.
        [theirs] = committed(
            deliveries.claim_due_deliveries,
            session=session,
            now=now_utc() + timedelta(seconds=2),
            limit=10,
            lease_seconds=60,
            max_attempts=5,
        )

        assert (
            committed(
                deliveries.renew_claim, session=session, job=ours, now=now_utc(), lease_seconds=60
            )
            is False
        )
        assert committed(
            deliveries.renew_claim, session=session, job=theirs, now=now_utc(), lease_seconds=60
        )


def test_two_delivery_loops_send_each_mail_once_while_slow_webhooks_hold_one_up(
    app: Flask,
    consume: Callable[[Event], None],
    smtp_sink: SmtpSink,
    misbehaving: Callable[[Behaviour], MisbehavingServer],
) -> None:
    server = misbehaving(drip_headers)
    consume(user_registered(ADA, "ada@example.com"))
    consume(user_email_verified(ADA))  # the address owner followed the link
    for _ in range(4):
        _add_webhook(app, f"http://127.0.0.1:{server.port}/hook")
    consume(order_created(ADA))  # a mail and four webhooks, besides the welcome mail
    with app.app_context():
        # The slow webhooks come first in a batch, the mails after them.
        db.session.execute(
            sa.text(
                "UPDATE deliveries SET next_attempt_at = now() - interval '1 hour'"
                " WHERE channel = 'webhook'"
            )
        )
        db.session.commit()
        session_factory = sessionmaker(bind=db.engine)
    config = {
        "NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE": True,
        "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS": 1.0,
        "SMTP_TIMEOUT_SECONDS": 1.0,
        # Shorter than the four webhooks of the first batch take (4 x 1 s).
        "NOTIFICATIONS_DELIVERY_LEASE_SECONDS": 2.0,
        "NOTIFICATIONS_MAX_ATTEMPTS": 2,
    }
    stop = threading.Event()

    def loop() -> threading.Thread:
        settings = settings_for(app, smtp_sink.port, **config)
        thread = threading.Thread(target=run_delivery_loop, args=(session_factory, settings, stop))
        thread.start()
        return thread

    def count(where: str) -> int:
        with app.app_context():
            return int(db.session.scalar(sa.text(f"SELECT count(*) FROM deliveries WHERE {where}")))

    def pending() -> int:
        return count("status = 'pending'")

    def pending_unclaimed() -> int:
        return count("status = 'pending' AND attempts = 0")

    first = loop()
    try:
        wait_for(lambda: pending_unclaimed() == 0, timeout=10)  # all in its first batch
        second = loop()  # takes over what the first one's lease no longer covers
        try:
            wait_for(lambda: pending() == 0, timeout=60)
        finally:
            stop.set()
            second.join(timeout=30)
    finally:
        stop.set()
        first.join(timeout=30)  # after the rest of its batch: what it sent is in the sink

    subjects = sorted(m["Subject"] for m in smtp_sink.messages())
    assert len(subjects) == 2  # the order mail and the welcome mail, once each
    assert subjects[0].startswith("We received your order")
    assert subjects[1].startswith("Welcome")


def test_a_delivery_whose_worker_dies_on_every_attempt_ends_failed_not_retried_forever(
    app: Flask, client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    start = now_utc()

    def claim(round_: int) -> list[deliveries.DeliveryJob]:
        # Each round comes after the previous claim's lease ran out, its worker gone.
        with app.app_context():
            return committed(
                deliveries.claim_due_deliveries,
                session=db.session(),
                now=start + timedelta(seconds=61 * round_),
                limit=10,
                lease_seconds=60,
                max_attempts=3,
            )

    attempts = [[job.attempt for job in claim(round_)] for round_ in range(6)]

    assert attempts == [[1], [2], [3], [], [], []]
    [item] = client.get("/api/v1/notifications", headers=tokens.headers(ADA)).get_json()["items"]
    [delivery] = item["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("failed", 3)
    assert delivery["last_error"] == deliveries.WORKER_LOST
    assert delivery["next_attempt_at"] is None


# -- backoff ----------------------------------------------------------------------------


def test_a_failed_attempt_waits_out_its_backoff_before_it_is_claimed_again(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    settings = settings_for(  # no SMTP server on that port: every attempt fails
        app,
        free_port(),
        NOTIFICATIONS_BACKOFF_BASE_SECONDS=60.0,
        NOTIFICATIONS_BACKOFF_CAP_SECONDS=3600.0,
    )
    ceiling = timedelta(seconds=settings.policy.ceiling(1))

    deliver(app, settings)
    after_attempt = now_utc()

    delivery = _only(app, "email")
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    due = delivery.next_attempt_at
    assert due is not None
    assert after_attempt < due <= after_attempt + ceiling
    assert deliver(app, settings) == 0  # due later: not claimed now
    with app.app_context():
        just_before = due - timedelta(seconds=1)
        assert deliver_due_once(db.session(), settings, now=lambda: just_before) == 0
        assert deliver_due_once(db.session(), settings, now=lambda: due) == 1
    assert _only(app, "email").attempts == 2


# -- deactivated users ------------------------------------------------------------------


def test_a_user_deactivated_after_their_delivery_was_created_is_not_written_to(
    app: Flask, consume: Callable[[Event], None], smtp_sink: SmtpSink
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    with app.app_context():
        # user.deactivated was applied by another consumer while this event was handled:
        # the contact is inactive, and this pending delivery escaped its cancellation.
        db.session.execute(sa.update(Contact).values(active=False))
        db.session.commit()

    assert deliver(app, settings_for(app, smtp_sink.port)) == 0

    delivery = _only(app, "email")
    assert (delivery.status, delivery.attempts) == ("cancelled", 0)
    assert delivery.last_error == deliveries.USER_DEACTIVATED
    assert smtp_sink.messages() == []


def test_a_user_deactivated_while_their_batch_is_being_sent_gets_nothing_more(
    app: Flask, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    consume(order_created(ADA))
    sent: list[str] = []

    class DeactivatingMailer:
        """Sends the first mail, during which auth's user.deactivated arrives."""

        def send(self, *, delivery_id: str, to: str, subject: str, text: str, html: str) -> None:
            sent.append(subject)
            if len(sent) == 1:
                consume(user_deactivated(ADA))

    settings = settings_for(app, free_port())
    settings.email = DeactivatingMailer()
    assert deliver(app, settings) == 2  # both mails were claimed in one batch

    assert len(sent) == 1
    with app.app_context():
        rows = db.session.execute(sa.select(Delivery.status, Delivery.last_error))
        outcomes = sorted((row[0], row[1]) for row in rows)
    # The first one was on the wire when the user was deactivated: it did go out.
    assert outcomes == [("cancelled", deliveries.USER_DEACTIVATED), ("sent", None)]


# -- correlation ------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was: configure_logging changes it for the process."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_log_line_of_a_delivery_carries_the_trace_and_request_of_its_event(
    app: Flask,
    consume: Callable[[Event], None],
    smtp_sink: SmtpSink,
    restore_logging: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    traceparent = child_traceparent(None)  # as the gateway made it for "place my order"
    consume(user_registered(ADA))  # an event without correlation ids
    consume(user_email_verified(ADA))  # the address owner followed the link
    consume(dataclasses.replace(order_created(ADA), requestid="req-42", traceparent=traceparent))
    configure_logging("notifications", "INFO")  # as deployed; here to the stdout capsys set

    assert deliver(app, settings_for(app, smtp_sink.port)) == 2

    out = capsys.readouterr().out.splitlines()
    lines = [json.loads(line) for line in out if line.startswith("{")]
    sent = [line for line in lines if line["message"] == "delivery sent"]
    ids = sorted(((line["trace_id"] or ""), line["request_id"] or "") for line in sent)
    # The order's mail under the order's trace and request; the welcome mail under none.
    assert ids == [("", ""), (trace_id_of(traceparent), "req-42")]
