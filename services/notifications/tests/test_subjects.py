"""Every notification names what it is about, so a client can link to it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from services.notifications.tests.conftest import (
    TokenMaker,
    order_created,
    order_status_changed,
    user_email_verified,
    user_registered,
)
from shared.events import Event

pytestmark = pytest.mark.integration

BASE = "/api/v1/notifications"
ADA = "user-ada"


def test_order_notifications_carry_the_full_order_id_and_its_api_path(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    order_id = str(uuid.uuid4())
    consume(order_created(ADA, order_id))
    consume(order_status_changed(ADA, order_id, "pending", "confirmed"))

    items = client.get(BASE, headers=tokens.headers(ADA)).get_json()["items"]

    link = {"type": "order", "id": order_id, "path": f"/api/v1/orders/{order_id}"}
    assert [item["subject"] for item in items] == [link, link]


def test_account_notifications_point_at_the_account(
    client: FlaskClient, tokens: TokenMaker, consume: Callable[[Event], None]
) -> None:
    consume(user_registered(ADA))
    consume(user_email_verified(ADA))

    [welcome] = client.get(BASE, headers=tokens.headers(ADA)).get_json()["items"]

    assert welcome["subject"] == {"type": "user", "id": ADA, "path": "/api/v1/auth/me"}
