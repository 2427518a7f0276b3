"""HTTP layer of the notifications service: parse, call a use case, shape the answer."""

# flask-smorest ships no type hints, so each of its decorators would be reported.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from typing import Any

from flask import current_app
from flask.views import MethodView
from marshmallow import RAISE
from sqlalchemy.orm import Session

from services.notifications import services, webhooks
from services.notifications.models import Delivery, Notification, WebhookEndpoint, db
from services.notifications.schemas import (
    DeliverySchema,
    NotificationPageSchema,
    NotificationQueryArgsSchema,
    NotificationSchema,
    WebhookAttemptPageSchema,
    WebhookAttemptQueryArgsSchema,
    WebhookCreatedSchema,
    WebhookCreateSchema,
    WebhookListSchema,
    WebhookRecoveredSchema,
    WebhookRecoverSchema,
    WebhookRotatedSchema,
    WebhookRotateSchema,
    WebhookSchema,
)
from services.notifications.services import NotificationPage
from services.notifications.ssrf import TargetGuard
from shared.app import ApiBlueprint
from shared.conditional import conditional_get
from shared.db import utcnow
from shared.openapi import operation
from shared.tokens import current_principal, require_auth
from shared.uow import unit_of_work

blp = ApiBlueprint(
    "notifications",
    __name__,
    url_prefix="/api/v1/notifications",
    description="A user's notifications and webhook endpoints.",
)
# Every GET here answers per-user data: ETags, 304s and private caching (shared.conditional).
blp.after_request(conditional_get)

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
GUARD_EXTENSION = "notifications_target_guard"


def _session() -> Session:
    return db.session()


def _user_id() -> str:
    return current_principal().user_id


@blp.route("")
class Notifications(MethodView):
    """The caller's notifications."""

    @operation(blp, "list_notifications", conditional=True)
    @blp.doc(security=BEARER)
    @require_auth
    @blp.arguments(NotificationQueryArgsSchema, location="query", unknown=RAISE)
    @blp.response(200, NotificationPageSchema)
    def get(self, args: dict[str, Any]) -> NotificationPage:
        """Newest first; `unread=true` for unread only; pass `next_cursor` back as `cursor`."""
        return services.list_notifications(
            session=_session(),
            user_id=_user_id(),
            unread=args["unread"],
            limit=args["limit"],
            after=args.get("cursor"),
        )


@blp.route("/<uuid:notification_id>/read")
class NotificationRead(MethodView):
    """Reading a notification."""

    @operation(blp, "mark_notification_read")
    @blp.doc(security=BEARER)
    @require_auth
    @blp.response(200, NotificationSchema)
    def post(self, notification_id: uuid.UUID) -> Notification:
        """Mark one of your notifications read; 404 for anyone else's."""
        with unit_of_work(_session()) as session:
            return services.mark_read(
                session=session, user_id=_user_id(), notification_id=notification_id
            )


@blp.route("/webhooks")
class Webhooks(MethodView):
    """The caller's webhook endpoints."""

    @operation(blp, "list_webhooks", conditional=True)
    @blp.doc(security=BEARER)
    @require_auth
    @blp.response(200, WebhookListSchema)
    def get(self) -> dict[str, list[WebhookEndpoint]]:
        """Your endpoints, without their secrets."""
        return {"items": webhooks.list_webhooks(session=_session(), user_id=_user_id())}

    @operation(blp, "create_webhook", 409)
    @blp.doc(security=BEARER)
    @require_auth
    @blp.arguments(WebhookCreateSchema)
    @blp.response(201, WebhookCreatedSchema)
    def post(self, body: dict[str, Any]) -> tuple[WebhookEndpoint, dict[str, str]]:
        """Register an endpoint; its signing secret is in this answer and never again."""
        guard: TargetGuard = current_app.extensions[GUARD_EXTENSION]
        with unit_of_work(_session()) as session:
            endpoint = webhooks.create_webhook(
                session=session,
                user_id=_user_id(),
                url=body["url"],
                event_types=body["event_types"],
                description=body["description"],
                guard=guard,
                max_per_user=int(current_app.config["NOTIFICATIONS_MAX_WEBHOOKS_PER_USER"]),
            )
        # The secret is a credential, like a token: no cache may keep this answer.
        return endpoint, {"Cache-Control": "no-store"}


@blp.route("/webhooks/<uuid:webhook_id>")
class WebhookById(MethodView):
    """One of the caller's webhook endpoints."""

    @operation(blp, "get_webhook", conditional=True)
    @blp.doc(security=BEARER)
    @require_auth
    @blp.response(200, WebhookSchema)
    def get(self, webhook_id: uuid.UUID) -> WebhookEndpoint:
        """The endpoint, whether it is enabled, and how its rotation stands. 404 for others'."""
        return webhooks.get_webhook(session=_session(), user_id=_user_id(), webhook_id=webhook_id)

    @operation(blp, "delete_webhook")
    @blp.doc(security=BEARER)
    @require_auth
    @blp.response(204)
    def delete(self, webhook_id: uuid.UUID) -> None:
        """Delete it; what was still to be sent to it is cancelled. 404 for anyone else's."""
        with unit_of_work(_session()) as session:
            webhooks.delete_webhook(session=session, user_id=_user_id(), webhook_id=webhook_id)


@blp.route("/webhooks/<uuid:webhook_id>/attempts")
class WebhookAttempts(MethodView):
    """The attempt log of one of the caller's endpoints."""

    @operation(blp, "list_webhook_attempts", conditional=True)
    @blp.doc(security=BEARER)
    @require_auth
    @blp.arguments(WebhookAttemptQueryArgsSchema, location="query", unknown=RAISE)
    @blp.response(200, WebhookAttemptPageSchema)
    def get(self, args: dict[str, Any], webhook_id: uuid.UUID) -> webhooks.AttemptPage:
        """Every POST to it, newest first: outcome, HTTP status, duration, next retry.

        `outcome=failed` (or `succeeded`) for one outcome only; pass `next_cursor` back as
        `cursor`. 404 for anyone else's endpoint.
        """
        return webhooks.list_webhook_attempts(
            session=_session(),
            user_id=_user_id(),
            webhook_id=webhook_id,
            outcome=args.get("outcome"),
            limit=args["limit"],
            after=args.get("cursor"),
        )


@blp.route("/webhooks/<uuid:webhook_id>/recover")
class WebhookRecover(MethodView):
    """Sending again what an endpoint missed."""

    @operation(blp, "recover_webhook")
    @blp.doc(security=BEARER)
    @require_auth
    @blp.arguments(WebhookRecoverSchema)
    @blp.response(202, WebhookRecoveredSchema)
    def post(self, body: dict[str, Any], webhook_id: uuid.UUID) -> dict[str, int]:
        """Queue every event since `since` that the endpoint did not get, once each.

        Enables the endpoint if it was disabled. What was sent, or is being sent, is not
        sent again: calling it twice is safe. 404 for anyone else's endpoint.
        """
        with unit_of_work(_session()) as session:
            queued = webhooks.recover_webhook(
                session=session,
                user_id=_user_id(),
                webhook_id=webhook_id,
                since=body["since"].astimezone(UTC),
                now=utcnow(),
            )
        return {"queued": queued}


@blp.route("/webhooks/<uuid:webhook_id>/rotate-secret")
class WebhookRotateSecret(MethodView):
    """Rotating an endpoint's signing secret."""

    @operation(blp, "rotate_webhook_secret")
    @blp.doc(security=BEARER)
    @require_auth
    @blp.arguments(WebhookRotateSchema)
    @blp.response(200, WebhookRotatedSchema)
    def post(
        self, body: dict[str, Any], webhook_id: uuid.UUID
    ) -> tuple[WebhookEndpoint, dict[str, str]]:
        """A new secret, shown this once; the old one signs too for the grace period.

        During it every webhook carries two signatures (Standard Webhooks allows several),
        so receivers holding either secret verify it. 404 for anyone else's endpoint.
        """
        with unit_of_work(_session()) as session:
            endpoint = webhooks.rotate_webhook_secret(
                session=session,
                user_id=_user_id(),
                webhook_id=webhook_id,
                grace=timedelta(seconds=body["grace_period_seconds"]),
                now=utcnow(),
            )
        return endpoint, {"Cache-Control": "no-store"}


@blp.route("/webhooks/<uuid:webhook_id>/ping")
class WebhookPing(MethodView):
    """A test event for an endpoint."""

    @operation(blp, "ping_webhook")
    @blp.doc(security=BEARER)
    @require_auth
    @blp.response(202, DeliverySchema)
    def post(self, webhook_id: uuid.UUID) -> Delivery:
        """Queue a signed `webhook.ping` event, tried once; its outcome shows in the attempts.

        Disabled endpoints get it too, to tell whether they are back. 404 for anyone else's.
        """
        with unit_of_work(_session()) as session:
            return webhooks.ping_webhook(
                session=session, user_id=_user_id(), webhook_id=webhook_id, now=utcnow()
            )
