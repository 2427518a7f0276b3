"""The HTTP API as a client sees it: own notifications only, reading, webhooks, errors."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.notifications.api import GUARD_EXTENSION
from services.notifications.ssrf import TargetGuard
from services.notifications.tests.conftest import (
    TokenMaker,
    order_created,
    resolver_of,
    user_email_verified,
    user_registered,
)
from services.notifications.webhooks import REFUSED_TARGET
from shared.events import Event

pytestmark = pytest.mark.integration

BASE = "/api/v1/notifications"
ADA, BOB = "user-ada", "user-bob"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
NUL_IN_URL = '{"url": "http://127.0.0.1:9/\\u0000", "event_types": ["order.created"]}'
NUL_IN_DESCRIPTION = (
    '{"url": "http://127.0.0.1:9/", "event_types": ["order.created"], "description": "a\\u0000b"}'
)


def _problem(response) -> dict:
    assert response.mimetype == "application/problem+json", response.data
    return dict(response.get_json())


def test_a_user_sees_only_their_own_notifications_newest_first(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    consume(order_created(ADA, total_cents=100))
    consume(order_created(BOB, total_cents=200))

    response = client.get(BASE, headers=tokens.headers(ADA))

    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [item["event_type"] for item in items] == ["order.created", "user.registered"]
    assert items[1]["title"] == "Welcome to Flask Suite"
    assert response.get_json()["next_cursor"] is None


def test_each_notification_shows_how_its_deliveries_are_going(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link

    [item] = client.get(BASE, headers=tokens.headers(ADA)).get_json()["items"]

    [delivery] = item["deliveries"]
    assert delivery["channel"] == "email"
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 0
    assert item["read"] is False


def test_reading_a_notification_removes_it_from_the_unread_list(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    consume(order_created(ADA))
    newest = client.get(BASE, headers=tokens.headers(ADA)).get_json()["items"][0]

    read = client.post(f"{BASE}/{newest['id']}/read", headers=tokens.headers(ADA))
    again = client.post(f"{BASE}/{newest['id']}/read", headers=tokens.headers(ADA))

    assert read.status_code == 200 and read.get_json()["read"] is True
    assert again.status_code == 200 and again.get_json()["read_at"] == read.get_json()["read_at"]
    unread = client.get(f"{BASE}?unread=true", headers=tokens.headers(ADA)).get_json()["items"]
    assert [item["event_type"] for item in unread] == ["user.registered"]
    already = client.get(f"{BASE}?unread=false", headers=tokens.headers(ADA)).get_json()["items"]
    assert [item["id"] for item in already] == [newest["id"]]


def test_someone_else_s_notification_cannot_be_read_and_looks_missing(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))  # the address owner followed the link
    [item] = client.get(BASE, headers=tokens.headers(ADA)).get_json()["items"]

    response = client.post(f"{BASE}/{item['id']}/read", headers=tokens.headers(BOB))

    assert response.status_code == 404
    assert _problem(response)["status"] == 404
    assert client.get(BASE, headers=tokens.headers(ADA)).get_json()["items"][0]["read"] is False


@pytest.mark.parametrize("notification_id", [UNKNOWN_ID, "not-a-uuid"])
def test_reading_an_unknown_notification_is_404(
    client: FlaskClient, tokens: TokenMaker, notification_id: str
) -> None:
    response = client.post(f"{BASE}/{notification_id}/read", headers=tokens.headers(ADA))
    assert response.status_code == 404
    _problem(response)


def test_pages_follow_the_cursor_to_the_end_without_repeats(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    for cents in range(5):
        consume(order_created(ADA, total_cents=cents))
    seen: list[str] = []
    url = f"{BASE}?limit=2"
    while url:
        page = client.get(url, headers=tokens.headers(ADA)).get_json()
        seen += [item["id"] for item in page["items"]]
        url = f"{BASE}?limit=2&cursor={page['next_cursor']}" if page["next_cursor"] else ""

    assert len(seen) == 5 and len(set(seen)) == 5


@pytest.mark.parametrize(
    "query", ["limit=101", "limit=0", "limit=ten", "cursor=garbage", "unread=maybe", "sort=asc"]
)
def test_bad_list_queries_are_422_problems(
    client: FlaskClient, tokens: TokenMaker, query: str
) -> None:
    response = client.get(f"{BASE}?{query}", headers=tokens.headers(ADA))
    assert response.status_code == 422
    assert _problem(response)["errors"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("post", f"/{UNKNOWN_ID}/read"),
        ("get", "/webhooks"),
        ("post", "/webhooks"),
        ("delete", f"/webhooks/{UNKNOWN_ID}"),
    ],
)
def test_every_route_needs_a_token(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(f"{BASE}{path}")
    assert response.status_code == 401
    _problem(response)


def test_a_forged_token_is_refused(client: FlaskClient) -> None:
    forged = TokenMaker()  # same claims, a key the service does not trust
    response = client.get(BASE, headers=forged.headers(ADA))
    assert response.status_code == 401


# -- webhooks ---------------------------------------------------------------------------


@pytest.fixture
def allow_private(app: Flask):
    """Let webhooks point at this machine (the test servers live on 127.0.0.1)."""
    original = app.extensions[GUARD_EXTENSION]
    app.extensions[GUARD_EXTENSION] = TargetGuard(allow_private=True)
    yield
    app.extensions[GUARD_EXTENSION] = original


def _register(client: FlaskClient, tokens: TokenMaker, user: str = ADA, **body):
    payload = {"url": "http://127.0.0.1:9/hook", "event_types": ["order.created"], **body}
    return client.post(f"{BASE}/webhooks", json=payload, headers=tokens.headers(user))


@pytest.mark.usefixtures("allow_private")
def test_the_webhook_secret_is_shown_once_at_creation_and_never_listed(
    client: FlaskClient, tokens: TokenMaker
) -> None:
    created = _register(client, tokens, description="shop sync")

    assert created.status_code == 201
    body = created.get_json()
    assert created.headers["Cache-Control"] == "no-store"  # the secret is a credential
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["order.created"]
    listed = client.get(f"{BASE}/webhooks", headers=tokens.headers(ADA)).get_json()["items"]
    assert [hook["id"] for hook in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert body["secret"] not in str(listed)


@pytest.mark.usefixtures("allow_private")
def test_a_user_lists_and_deletes_only_their_own_webhooks(
    client: FlaskClient, tokens: TokenMaker
) -> None:
    hook = _register(client, tokens).get_json()

    assert client.get(f"{BASE}/webhooks", headers=tokens.headers(BOB)).get_json()["items"] == []
    stolen = client.delete(f"{BASE}/webhooks/{hook['id']}", headers=tokens.headers(BOB))
    assert stolen.status_code == 404
    _problem(stolen)
    deleted = client.delete(f"{BASE}/webhooks/{hook['id']}", headers=tokens.headers(ADA))
    assert deleted.status_code == 204
    assert client.get(f"{BASE}/webhooks", headers=tokens.headers(ADA)).get_json()["items"] == []


@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://127.0.0.1:9/hook", "event_types": []},
        {"url": "http://127.0.0.1:9/hook", "event_types": ["user.deactivated"]},
        {"url": "http://127.0.0.1:9/hook", "event_types": ["order.created"], "secret": "mine"},
        {"url": "http://127.0.0.1:9/hook"},
        {"url": "not a url", "event_types": ["order.created"]},
        {"url": "http://127.0.0.1:9/" + "a" * 2100, "event_types": ["order.created"]},
    ],
)
def test_invalid_webhook_bodies_are_422_problems(
    client: FlaskClient, tokens: TokenMaker, body: dict
) -> None:
    response = client.post(f"{BASE}/webhooks", json=body, headers=tokens.headers(ADA))
    assert response.status_code == 422
    _problem(response)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "http://[::1]:8080/hook",
        "http://localhost:8080/hook",
    ],
)
def test_webhooks_to_internal_or_non_http_targets_are_refused_by_default(
    client: FlaskClient, tokens: TokenMaker, url: str
) -> None:
    response = _register(client, tokens, url=url)

    assert response.status_code == 422
    assert "url" in _problem(response)["errors"]
    assert client.get(f"{BASE}/webhooks", headers=tokens.headers(ADA)).get_json()["items"] == []


@pytest.fixture
def internal_dns(app: Flask):
    """The guard answers from a fake DNS that knows some internal names."""
    original = app.extensions[GUARD_EXTENSION]
    app.extensions[GUARD_EXTENSION] = TargetGuard(
        resolver=resolver_of(
            {
                "localhost": ["127.0.0.1"],
                "db.corp.internal": ["10.20.0.5"],
                "metadata.corp.internal": ["169.254.169.254"],
            }
        )
    )
    yield
    app.extensions[GUARD_EXTENSION] = original


@pytest.mark.usefixtures("internal_dns")
def test_a_refused_target_gets_one_reason_that_tells_nothing_about_our_network(
    client: FlaskClient, tokens: TokenMaker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.notifications.webhooks")
    urls = [
        "http://localhost:5432/",
        "http://db.corp.internal/hook",
        "http://metadata.corp.internal/latest/meta-data/",
        "http://unknown.corp.internal/hook",  # does not resolve
        "http://10.0.0.1/hook",
        "https://user:secret@db.corp.internal/hook",
    ]

    answers = []
    for url in urls:
        response = _register(client, tokens, url=url)
        assert response.status_code == 422, url
        problem = _problem(response)
        answers.append((problem["detail"], problem["errors"]))

    assert answers == [(REFUSED_TARGET, {"url": [REFUSED_TARGET]})] * len(urls)
    # ... while the operator's log says which rule refused each one.
    reasons = [getattr(r, "reason", "") for r in caplog.records]
    assert any("loopback address (127.0.0.1)" in reason for reason in reasons)
    assert any("unknown.corp.internal" in reason and "resolve" in reason for reason in reasons)


@pytest.mark.usefixtures("allow_private")
def test_a_user_cannot_register_endless_webhooks(
    app: Flask, client: FlaskClient, tokens: TokenMaker
) -> None:
    limit = app.config["NOTIFICATIONS_MAX_WEBHOOKS_PER_USER"]
    for _ in range(limit):
        assert _register(client, tokens).status_code == 201

    response = _register(client, tokens)

    assert response.status_code == 409
    _problem(response)


@pytest.mark.usefixtures("allow_private")
@pytest.mark.parametrize(
    ("data", "status"),
    [
        ('{"url": "http://127.0.0.1:9/", "event_types": ["order.created"', 400),
        ('["order.created"]', 422),
        ('"just a string"', 422),
        (NUL_IN_DESCRIPTION, 422),
        (NUL_IN_URL, 422),
    ],
)
def test_malformed_bodies_are_problems_never_server_errors(
    client: FlaskClient, tokens: TokenMaker, data: str, status: int
) -> None:
    response = client.post(
        f"{BASE}/webhooks", data=data, content_type="application/json", headers=tokens.headers(ADA)
    )
    assert response.status_code == status
    _problem(response)
