"""What gets sent, without any server: rendered text, email structure, signatures, backoff."""

from __future__ import annotations

import base64
import random
import time
import uuid

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from services.notifications.config import notifications_config
from services.notifications.deliveries import RetryPolicy
from services.notifications.delivery import delivery_settings, sign_webhook
from services.notifications.mail import build_email
from services.notifications.rendering import format_money, render
from services.notifications.webhooks import new_webhook_secret
from shared.config import Env

ORDER = {
    "order_id": "0f6b3a1c-0000-4000-8000-000000000000",
    "user_id": "u1",
    "status": "pending",
    "total_cents": 123456,
    "currency": "EUR",
    "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 61728}],
}


def test_the_welcome_greets_the_user_by_name_in_the_text_and_never_in_the_subject() -> None:
    rendered = render("user.registered", {"email": "ada@example.com", "name": "Ada"}, name="Ada")
    assert rendered.title == "Welcome to Flask Suite"
    assert "ada@example.com" in rendered.body
    assert rendered.email_text.startswith("Hello Ada,")


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("user.registered", {"email": "ada@example.com"}),
        ("order.created", ORDER),
        ("user.registration_attempted", {"user_id": "u1"}),
        (
            "user.verification_requested",
            {
                "email": "ada@example.com",
                "verify_url": "http://x.test/verify?token=t",
                "expires_at": "2030-01-01T00:00:00+00:00",
            },
        ),
    ],
)
def test_no_subject_carries_the_users_name(event_type, data) -> None:
    rendered = render(event_type, data, name="Zebedee Quux")
    assert "Zebedee" not in rendered.title
    assert "Zebedee" in rendered.email_text


def test_the_verification_link_is_in_the_mail_only() -> None:
    data = {
        "email": "ada@example.com",
        "verify_url": "http://127.0.0.1:8080/api/v1/auth/verify-email?token=secret-token",
        "expires_at": "2030-01-01T00:00:00+00:00",
    }
    rendered = render("user.verification_requested", data, name="Ada")
    assert rendered.title == "Verify your email address"
    assert "secret-token" not in rendered.body  # the in-app note: whoever holds the account
    assert data["verify_url"] in rendered.email_text
    assert "token=secret-token" in rendered.email_html


def test_an_order_notification_shows_the_total_and_items_in_money() -> None:
    rendered = render("order.created", ORDER, name="Ada")
    assert rendered.title == "We received your order 0f6b3a1c"
    assert "1,234.56 EUR" in rendered.body
    assert "2 x BOOK-1 at 617.28 EUR" in rendered.body


def test_a_status_change_says_from_what_to_what() -> None:
    data = {"order_id": "abcdef12-x", "user_id": "u1", "from": "confirmed", "to": "shipped"}
    rendered = render("order.status_changed", data, name=None)
    assert rendered.title == "Your order abcdef12 is now shipped"
    assert "from confirmed to shipped" in rendered.body
    assert rendered.email_text.startswith("Hello,")


def test_markup_in_a_name_is_escaped_in_html_and_kept_in_text() -> None:
    rendered = render("order.created", ORDER, name="<script>alert(1)</script>")
    assert "<script>" not in rendered.email_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.email_html
    assert "Hello <script>alert(1)</script>," in rendered.email_text


def test_a_name_with_line_breaks_still_makes_a_one_line_subject() -> None:
    data = {"email": "ada@example.com", "name": "Ada\r\nBcc: victim@example.com"}
    rendered = render("user.registered", data, name=data["name"])
    assert "\n" not in rendered.title and "\r" not in rendered.title


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1234, "EUR", "12.34 EUR"),
        (5, "USD", "0.05 USD"),
        (500, "JPY", "500 JPY"),
        (1234, "KWD", "1.234 KWD"),
    ],
)
def test_money_is_shown_in_the_currency_s_minor_units(minor: int, currency: str, text: str) -> None:
    assert format_money(minor, currency) == text


def test_an_email_has_text_and_html_parts_and_a_message_id_from_the_delivery() -> None:
    delivery_id = str(uuid.uuid4())
    message = build_email(
        delivery_id=delivery_id,
        sender="Flask Suite <no-reply@suite.example>",
        to="ada@example.com",
        subject="Hi",
        text="plain",
        html="<p>rich</p>",
    )
    assert message["Message-ID"] == f"<{delivery_id}@suite.example>"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]


def test_a_webhook_secret_is_whsec_and_at_least_24_random_bytes() -> None:
    secret = new_webhook_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert new_webhook_secret() != secret


def _headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_our_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret, body, msg_id, timestamp = (
        new_webhook_secret(),
        '{"type":"x"}',
        "msg_1",
        int(time.time()),
    )
    signature = sign_webhook(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
    assert Webhook(secret).verify(body, _headers(msg_id, timestamp, signature)) == {"type": "x"}


def test_a_tampered_body_or_another_secret_does_not_verify() -> None:
    secret, body, msg_id, timestamp = new_webhook_secret(), '{"total":1}', "msg_1", int(time.time())
    signature = sign_webhook(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify('{"total":1000}', _headers(msg_id, timestamp, signature))
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, _headers(msg_id, timestamp, signature))


def test_retry_delays_grow_exponentially_with_jitter_in_their_upper_half_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=1.0, cap_seconds=8.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.9  # the whole half is used, not one value
        assert min(delays) < ceiling * 0.6


def test_by_default_a_delivery_is_retried_through_an_outage_of_many_hours() -> None:
    config = notifications_config(Env({}))
    policy = delivery_settings(config).policy

    shortest, longest = policy.window()

    assert shortest >= 16 * 3600  # even if every random draw is the smallest
    assert longest <= 36 * 3600
    assert policy.ceiling(policy.max_attempts) == 3600  # no wait longer than an hour
