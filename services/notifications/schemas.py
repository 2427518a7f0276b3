"""Bodies of the notifications API (marshmallow).

API input refuses unknown fields (no mass assignment). The data of the events this service
consumes is defined (and parsed) once for the whole suite, in shared.contracts.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.notifications.models import AttemptOutcome
from shared.pagination import CursorField, PageQueryArgsSchema
from shared.schemas import StrictSchema, UtcDateTime

MAX_URL_LENGTH = 2048
NO_CONTROL_CHARACTERS = r"\A[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*\Z"
NO_SPACE_OR_CONTROL = r"\A[^\x00-\x20\x7f]*\Z"
# Event types a user can subscribe a webhook to (user.deactivated reaches nobody).
SUBSCRIBABLE_EVENT_TYPES = ("user.registered", "order.created", "order.status_changed")
DEFAULT_GRACE_SECONDS = 24 * 3600
MAX_GRACE_SECONDS = 7 * 24 * 3600


# -- HTTP -------------------------------------------------------------------------------


class DeliverySchema(Schema):
    """How one channel of a notification went."""

    id = fields.UUID(dump_only=True)
    channel = fields.String(dump_only=True)
    status = fields.String(dump_only=True)
    attempts = fields.Integer(dump_only=True)
    last_error = fields.String(dump_only=True, allow_none=True)
    next_attempt_at = UtcDateTime(dump_only=True, allow_none=True)
    sent_at = UtcDateTime(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


# Where a client reads each kind of subject through the gateway (the user's own account
# for `user`: a notification is only ever shown to the user it is about or addressed to).
SUBJECT_PATHS = {
    "order": "/api/v1/orders/{id}",
    "user": "/api/v1/auth/me",
    "webhook": "/api/v1/notifications/webhooks/{id}",
}


class SubjectSchema(Schema):
    """A machine-readable link from a notification to what it is about."""

    type = fields.String(
        dump_only=True, metadata={"enum": sorted(SUBJECT_PATHS), "example": "order"}
    )
    id = fields.String(
        dump_only=True,
        metadata={"description": "The full id.", "example": "0b6f3c2e-8d7a-4f51-9c0e-2a4b6d8e1f30"},
    )
    path = fields.Function(
        lambda subject: SUBJECT_PATHS[subject.type].format(id=subject.id),
        dump_only=True,
        metadata={
            "type": "string",
            "description": "The API path that reads it with one GET (through the gateway).",
            "example": "/api/v1/orders/0b6f3c2e-8d7a-4f51-9c0e-2a4b6d8e1f30",
        },
    )


class NotificationSchema(Schema):
    """A notification as its owner sees it, with the status of each delivery."""

    id = fields.UUID(dump_only=True)
    event_type = fields.String(dump_only=True)
    title = fields.String(dump_only=True)
    body = fields.String(dump_only=True)
    read = fields.Function(lambda notification: notification.read_at is not None, dump_only=True)
    read_at = UtcDateTime(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)
    deliveries = fields.List(fields.Nested(DeliverySchema), dump_only=True)
    subject = fields.Nested(
        SubjectSchema,
        dump_only=True,
        allow_none=True,
        metadata={"description": "What it is about; null only for notifications made before."},
    )


class NotificationQueryArgsSchema(PageQueryArgsSchema):
    """GET / query: only unread ones?, page size, and the cursor of the previous page."""

    unread = fields.Boolean(load_default=None)


class NotificationPageSchema(Schema):
    """One page of notifications, newest first, and the cursor of the next (null at the end)."""

    items = fields.List(fields.Nested(NotificationSchema))
    next_cursor = CursorField(allow_none=True)


class WebhookCreateSchema(StrictSchema):
    """POST /webhooks body. Whether the target is allowed is decided by the use case."""

    url = fields.URL(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=[
            validate.Length(max=MAX_URL_LENGTH),
            validate.Regexp(
                NO_SPACE_OR_CONTROL, error="Spaces and control characters are not allowed."
            ),
        ],
    )
    event_types = fields.List(
        fields.String(validate=validate.OneOf(SUBSCRIBABLE_EVENT_TYPES)),
        required=True,
        validate=validate.Length(min=1, max=len(SUBSCRIBABLE_EVENT_TYPES)),
    )
    description = fields.String(
        load_default=None,
        allow_none=True,
        validate=[
            validate.Length(max=500),
            # PostgreSQL text cannot hold NUL; other control characters are no description.
            validate.Regexp(NO_CONTROL_CHARACTERS, error="Control characters are not allowed."),
        ],
    )


class WebhookSchema(Schema):
    """A registered endpoint; its secret is never shown again after creation."""

    id = fields.UUID(dump_only=True)
    url = fields.String(dump_only=True)
    event_types = fields.List(fields.String(), dump_only=True)
    description = fields.String(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)
    enabled = fields.Boolean(
        dump_only=True,
        metadata={
            "description": "False once disabled for failing too long; `recover` enables it.",
            "example": True,
        },
    )
    disabled_at = UtcDateTime(dump_only=True, allow_none=True)
    failing_since = UtcDateTime(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Since when every attempt failed; null after a success."},
    )
    previous_secret_expires_at = UtcDateTime(
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "After a rotation: until when the previous secret signs as well.",
            "example": "2026-12-03T15:00:00+00:00",
        },
    )


class WebhookCreatedSchema(WebhookSchema):
    """The 201 answer: the endpoint plus its signing secret, shown this once."""

    secret = fields.String(dump_only=True)


class WebhookRotatedSchema(WebhookCreatedSchema):
    """The answer to a rotation: the endpoint plus its new signing secret, shown this once."""


class WebhookRotateSchema(StrictSchema):
    """POST /webhooks/{id}/rotate-secret body: how long the current secret keeps signing."""

    grace_period_seconds = fields.Integer(
        load_default=DEFAULT_GRACE_SECONDS,
        validate=validate.Range(min=0, max=MAX_GRACE_SECONDS),
        metadata={
            "description": "Seconds during which webhooks carry signatures by both secrets "
            "(0: the old secret stops now). At most 7 days.",
            "example": 86400,
        },
    )


class WebhookRecoverSchema(StrictSchema):
    """POST /webhooks/{id}/recover body: from when to send again what the endpoint missed."""

    since = fields.AwareDateTime(
        required=True,
        metadata={
            "description": "Events from this time on (ISO 8601 with an offset) that the "
            "endpoint did not get are sent again, once each. A time in the future matches "
            "nothing yet: 0 are queued.",
            "example": "2026-12-02T09:00:00Z",
        },
    )


class WebhookRecoveredSchema(Schema):
    """How many deliveries `recover` queued again."""

    queued = fields.Integer(dump_only=True, metadata={"example": 12})


class WebhookAttemptSchema(Schema):
    """One attempt to POST to an endpoint."""

    id = fields.UUID(dump_only=True)
    delivery_id = fields.UUID(
        dump_only=True,
        metadata={"description": "The `webhook-id` the receiver saw (retries share it)."},
    )
    event_type = fields.String(dump_only=True, metadata={"example": "order.created"})
    attempt = fields.Integer(dump_only=True, metadata={"example": 1})
    outcome = fields.String(
        dump_only=True, metadata={"enum": [o.value for o in AttemptOutcome], "example": "failed"}
    )
    status_code = fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "The receiver's HTTP status; null without an answer.",
            "example": 503,
        },
    )
    duration_ms = fields.Integer(dump_only=True, metadata={"example": 84})
    error = fields.String(
        dump_only=True, allow_none=True, metadata={"example": "HTTP 503: Service Unavailable"}
    )
    next_retry_at = UtcDateTime(
        dump_only=True,
        allow_none=True,
        metadata={"description": "When the delivery is tried again; null if it is not."},
    )
    attempted_at = UtcDateTime(dump_only=True, attribute="created_at")


class WebhookAttemptQueryArgsSchema(PageQueryArgsSchema):
    """GET /webhooks/{id}/attempts query: only one outcome?, page size, the previous cursor."""

    outcome = fields.String(validate=validate.OneOf([o.value for o in AttemptOutcome]))


class WebhookAttemptPageSchema(Schema):
    """One page of an endpoint's attempts, newest first, and the next cursor (null at the end)."""

    items = fields.List(fields.Nested(WebhookAttemptSchema))
    next_cursor = CursorField(allow_none=True)


class WebhookListSchema(Schema):
    """The caller's endpoints, oldest first."""

    items = fields.List(fields.Nested(WebhookSchema))
