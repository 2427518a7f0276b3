"""The README's walk-through through the generated SDK (clients/python/), against the suite.

What a Python client of the suite writes: typed calls and models from `suite_client`, a
problem document as the SDK's typed Problem model, never a dict it has to guess at.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest
import requests
from standardwebhooks import Webhook
from suite_client import AuthenticatedClient, Client
from suite_client.api.auth import get_me, log_in, refresh_tokens, register, verify_email_link
from suite_client.api.notifications import (
    create_webhook,
    list_notifications,
    list_webhook_attempts,
    list_webhooks,
    recover_webhook,
)
from suite_client.api.orders import get_order, place_order
from suite_client.models import (
    AuthLogin,
    AuthProblem,
    AuthRefreshToken,
    AuthRegister,
    AuthRegistration,
    AuthTokenPair,
    AuthUser,
    NotificationsNotificationPage,
    NotificationsWebhookAttemptPage,
    NotificationsWebhookCreate,
    NotificationsWebhookCreated,
    NotificationsWebhookCreateEventTypesItem,
    NotificationsWebhookList,
    NotificationsWebhookRecover,
    NotificationsWebhookRecovered,
    OrdersOrder,
    OrdersOrderCreate,
    OrdersOrderCreateCurrency,
    OrdersOrderItemCreate,
    OrdersProblem,
)
from suite_client.types import Response

from bench.suite import Suite
from clients.sdk import SDK_DIR, SPEC_NAME
from tests.e2e.conftest import PASSWORD
from tests.support import verification_link

pytestmark = pytest.mark.e2e

T = TypeVar("T")


@pytest.fixture
def anonymous(suite: Suite) -> Iterator[Client]:
    """The SDK's client for the calls that need no token, pointed at the gateway."""
    with Client(base_url=suite.url("gateway"), raise_on_unexpected_status=True) as client:
        yield client


@pytest.fixture
def authenticated(suite: Suite) -> Iterator[Callable[[str], AuthenticatedClient]]:
    """Make SDK clients that send an access token; each is closed after the test."""
    with contextlib.ExitStack() as stack:

        def make(token: str) -> AuthenticatedClient:
            client = AuthenticatedClient(
                base_url=suite.url("gateway"), token=token, raise_on_unexpected_status=True
            )
            return stack.enter_context(client)

        yield make


class Receiver:
    """A webhook endpoint on this machine: records each POST, answers 204."""

    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, dict[str, str]]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((body, dict(self.headers.items())))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/suite"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running webhook receiver for one test."""
    endpoint = Receiver()
    thread = threading.Thread(target=endpoint.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


def answer(response: Response[Any], status: int, model: type[T]) -> T:
    """The parsed body of an answer that must have `status` and be a `model`."""
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, model), response.parsed
    return response.parsed


def test_the_readme_walk_through_works_through_the_sdk(
    suite: Suite, anonymous: Client, authenticated, receiver: Receiver, wait_for
) -> None:
    email = f"ada-{uuid.uuid4().hex[:6]}@e2e.example.com"

    # register (202), then open the link of the verification mail
    registration = register.sync_detailed(
        client=anonymous, body=AuthRegister(email=email, password=PASSWORD, name="Ada")
    )
    answer(registration, 202, AuthRegistration)
    link = verification_link(suite.dir / "mail", email, timeout=60)
    token = link.split("token=", 1)[1]
    verified = answer(verify_email_link.sync_detailed(client=anonymous, token=token), 200, AuthUser)
    assert (verified.email, verified.email_verified) == (email, True)

    # log in, then refresh: a new pair, and the spent refresh token is refused
    pair = answer(
        log_in.sync_detailed(client=anonymous, body=AuthLogin(email=email, password=PASSWORD)),
        200,
        AuthTokenPair,
    )
    spent = AuthRefreshToken(refresh_token=pair.refresh_token)
    refreshed = answer(
        refresh_tokens.sync_detailed(client=anonymous, body=spent), 200, AuthTokenPair
    )
    assert refreshed.refresh_token != pair.refresh_token
    reused = answer(refresh_tokens.sync_detailed(client=anonymous, body=spent), 401, AuthProblem)
    assert reused.status == 401
    ada = authenticated(refreshed.access_token)
    me = answer(get_me.sync_detailed(client=ada), 200, AuthUser)
    assert me.email == email

    # a webhook for new orders: its secret is shown once, and it is listed afterwards
    webhook = answer(
        create_webhook.sync_detailed(
            client=ada,
            body=NotificationsWebhookCreate(
                url=receiver.url,
                event_types=[NotificationsWebhookCreateEventTypesItem.ORDER_CREATED],
                description="the SDK walk-through",
            ),
        ),
        201,
        NotificationsWebhookCreated,
    )
    listed = answer(list_webhooks.sync_detailed(client=ada), 200, NotificationsWebhookList)
    assert [w.id for w in listed.items or []] == [webhook.id]

    # an order priced from the catalogue (2 x BOOK-1 + 1 x PEN-7)
    placed = answer(
        place_order.sync_detailed(
            client=ada,
            body=OrdersOrderCreate(
                currency=OrdersOrderCreateCurrency.EUR,
                items=[
                    OrdersOrderItemCreate(sku="BOOK-1", quantity=2),
                    OrdersOrderItemCreate(sku="PEN-7", quantity=1),
                ],
            ),
            idempotency_key=uuid.uuid4().hex,
        ),
        201,
        OrdersOrder,
    )
    assert placed.total_cents == 2 * 1250 + 199

    # the notification about it leads back to the order
    def order_notifications() -> list[Any]:
        page = answer(
            list_notifications.sync_detailed(client=ada, limit=100),
            200,
            NotificationsNotificationPage,
        )
        return [n for n in page.items or [] if n.event_type == "order.created"]

    (notification,) = wait_for(order_notifications, timeout=30, what="order notification")
    assert notification.subject is not None and notification.subject.id == str(placed.id)
    fetched = answer(get_order.sync_detailed(client=ada, order_id=placed.id), 200, OrdersOrder)
    assert fetched.to_dict() == placed.to_dict()

    # the webhook fires, signed with the secret the SDK handed over
    wait_for(lambda: receiver.bodies, timeout=30, what="webhook delivery")
    body, headers = receiver.bodies[0]
    assert isinstance(webhook.secret, str)
    payload = Webhook(webhook.secret).verify(body, headers)
    assert payload["type"] == "order.created"
    assert payload["data"]["order_id"] == str(placed.id)

    # its attempt log shows the delivery; recovering sends nothing it already got
    def attempts() -> list[Any]:
        page = answer(
            list_webhook_attempts.sync_detailed(webhook.id, client=ada),
            200,
            NotificationsWebhookAttemptPage,
        )
        return list(page.items or [])

    (attempt,) = wait_for(attempts, timeout=30, what="webhook attempt log")
    assert (attempt.outcome, attempt.status_code) == ("succeeded", 204)
    since = NotificationsWebhookRecover(since=datetime.now(UTC) - timedelta(hours=1))
    recovered = answer(
        recover_webhook.sync_detailed(webhook.id, client=ada, body=since),
        202,
        NotificationsWebhookRecovered,
    )
    assert recovered.queued == 0


def test_an_order_for_an_unknown_sku_is_the_sdks_typed_problem(
    anonymous: Client, authenticated
) -> None:
    email = f"bob-{uuid.uuid4().hex[:6]}@e2e.example.com"
    answer(
        register.sync_detailed(
            client=anonymous, body=AuthRegister(email=email, password=PASSWORD, name="Bob")
        ),
        202,
        AuthRegistration,
    )
    tokens = answer(
        log_in.sync_detailed(client=anonymous, body=AuthLogin(email=email, password=PASSWORD)),
        200,
        AuthTokenPair,
    )
    bob = authenticated(tokens.access_token)

    refused = place_order.sync_detailed(
        client=bob,
        body=OrdersOrderCreate(
            currency=OrdersOrderCreateCurrency.EUR,
            items=[OrdersOrderItemCreate(sku="CABLE-2", quantity=1)],
        ),
    )

    problem = answer(refused, 422, OrdersProblem)
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert (problem.status, problem.title) == (422, "Unprocessable Content")
    assert problem.request_id == refused.headers["X-Request-ID"]
    assert problem.errors is not None
    assert problem.errors.to_dict() == {
        "items": {"0": {"sku": [problem.errors["items"]["0"]["sku"][0]]}}
    }


def test_the_gateway_serves_the_document_the_sdk_was_generated_from(suite: Suite) -> None:
    served = requests.get(suite.url("gateway", "/openapi.json"), timeout=10).json()

    assert served == json.loads((SDK_DIR / SPEC_NAME).read_text())
