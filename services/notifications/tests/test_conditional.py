"""Polling a notification page: a weak ETag, 304 while nothing changed, private caching."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from services.notifications.tests.conftest import (
    TokenMaker,
    order_created,
    user_email_verified,
    user_registered,
)
from shared.events import Event

pytestmark = pytest.mark.integration

BASE = "/api/v1/notifications"
ADA, BOB = "user-ada", "user-bob"


def test_a_poll_of_an_unchanged_page_is_a_bodiless_304_until_something_changes(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))
    page = client.get(BASE, headers=tokens.headers(ADA))
    poll = {**tokens.headers(ADA), "If-None-Match": page.headers["ETag"]}

    unchanged = client.get(BASE, headers=poll)
    consume(order_created(ADA))
    changed = client.get(BASE, headers=poll)
    [newest, _] = changed.get_json()["items"]
    client.post(f"{BASE}/{newest['id']}/read", headers=tokens.headers(ADA))
    read = client.get(BASE, headers={**poll, "If-None-Match": changed.headers["ETag"]})

    assert page.headers["ETag"].startswith('W/"')
    assert (unchanged.status_code, unchanged.data) == (304, b"")
    assert unchanged.headers["ETag"] == page.headers["ETag"]
    assert changed.status_code == 200
    assert changed.headers["ETag"] != page.headers["ETag"]
    assert read.status_code == 200  # reading one changes the page too


def test_per_user_pages_may_be_kept_only_by_the_users_own_cache(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))

    for path in (BASE, f"{BASE}?unread=true", f"{BASE}/webhooks"):
        response = client.get(path, headers=tokens.headers(ADA))

        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "private, no-cache"
        assert "Authorization" in response.headers["Vary"]


def test_another_users_etag_does_not_match_a_different_page(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))
    adas = client.get(BASE, headers=tokens.headers(ADA))

    bobs = client.get(BASE, headers={**tokens.headers(BOB), "If-None-Match": adas.headers["ETag"]})

    assert bobs.status_code == 200
    assert bobs.get_json()["items"] == []
