"""Text no database can hold is refused by the shared request parser here too (integration)."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from services.notifications.tests.conftest import TokenMaker

pytestmark = pytest.mark.integration

WEBHOOKS = "/api/v1/notifications/webhooks"
# A public address literal: the target guard accepts it without a DNS lookup.
VALID = {"url": "https://8.8.8.8/hook", "event_types": ["order.created"], "description": "shop"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "\ud800"),
        ("description", "a\u0000b"),
        ("url", "https://8.8.8.8/\udfff"),
        ("event_types", ["order.created\u0000"]),
    ],
    ids=["lone surrogate", "NUL", "surrogate in url", "NUL in a list"],
)
def test_unstorable_text_in_a_webhook_is_a_422_naming_the_field_and_stores_nothing(
    client: FlaskClient, tokens: TokenMaker, field: str, value: object
) -> None:
    headers = tokens.headers("user-ada")
    response = client.post(
        WEBHOOKS,
        # ASCII escapes, as a client's JSON encoder writes them ("\ud800" is valid JSON).
        data=json.dumps({**VALID, field: value}),
        content_type="application/json",
        headers=headers,
    )

    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert client.get(WEBHOOKS, headers=headers).get_json()["items"] == []


def test_the_same_webhook_with_storable_text_is_created(
    client: FlaskClient, tokens: TokenMaker
) -> None:
    response = client.post(WEBHOOKS, json=VALID, headers=tokens.headers("user-ada"))
    assert response.status_code == 201, response.get_data(as_text=True)
