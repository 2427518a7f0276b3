"""Bodies of the notifications API (marshmallow).

API input refuses unknown fields (no mass assignment). The data of the events this service
consumes is defined (and parsed) once for the whole suite, in shared.contracts.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared.pagination import CursorField, PageQueryArgsSchema
from shared.schemas import StrictSchema, UtcDateTime

MAX_URL_LENGTH = 2048
NO_CONTROL_CHARACTERS = r"\A[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*\Z"
NO_SPACE_OR_CONTROL = r"\A[^\x00-\x20\x7f]*\Z"
# Event types a user can subscribe a webhook to (user.deactivated reaches nobody).
SUBSCRIBABLE_EVENT_TYPES = ("user.registered", "order.created", "order.status_changed")


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
SUBJECT_PATHS = {"order": "/api/v1/orders/{id}", "user": "/api/v1/auth/me"}


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


class WebhookCreatedSchema(WebhookSchema):
    """The 201 answer: the endpoint plus its signing secret, shown this once."""

    secret = fields.String(dump_only=True)


class WebhookListSchema(Schema):
    """The caller's endpoints, oldest first."""

    items = fields.List(fields.Nested(WebhookSchema))
