"""Tables of the notifications service: contacts, notifications, deliveries, webhooks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import NAMING_CONVENTION, JSONType, utcnow
from shared.inbox import InboxMixin

# auth's user ids, as they arrive in events and in the token's `sub` (opaque text here).
USER_ID = sa.String(64)


class NotificationsBase(DeclarativeBase):
    """This service's declarative base: its own metadata, the suite's naming convention."""

    # Not shared.db.Base: two services' `inbox` tables could not live in one MetaData.

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=NotificationsBase)

if TYPE_CHECKING:
    # flask-sqlalchemy types db.Model as a variable, which mypy refuses as a base class.
    Model = NotificationsBase
else:
    Model = db.Model


class Channel(StrEnum):
    """Where a delivery goes."""

    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(StrEnum):
    """Life of a delivery: pending until sent, failed after the last attempt, or cancelled."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Inbox(InboxMixin, Model):
    """Events already applied, so a redelivered event changes nothing."""


class Contact(Model):
    """Projection of auth's users: where to write to, and whether we still may."""

    __tablename__ = "contacts"

    user_id: Mapped[str] = mapped_column(USER_ID, primary_key=True)
    # None while only user.deactivated has arrived (events of two types are not ordered).
    email: Mapped[str | None] = mapped_column(sa.String(320))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    # Until auth says the owner confirmed the address (user.email_verified), it gets no
    # mail but the one carrying the verification link.
    email_verified: Mapped[bool] = mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # The user's version (auth's counter) that last set `active`, and the one that last set
    # email and name: an older event arriving late changes neither (0: none applied yet).
    active_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    profile_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


@dataclass(frozen=True)
class Subject:
    """What a notification is about: `order` and the order's id, or `user` and the user's."""

    type: str
    id: str


class Notification(Model):
    """One event as its user sees it in the app."""

    __tablename__ = "notifications"
    __table_args__ = (
        # Keyset pagination of a user's list, newest first.
        sa.Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        # The purge of notifications past their retention (services.notifications.retention).
        sa.Index("ix_notifications_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(USER_ID)
    # Unique: a second line of defence behind the inbox, one notification per event.
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # The originating event's correlation ids: the delivery worker logs under them.
    request_id: Mapped[str | None] = mapped_column(sa.String(128))
    traceparent: Mapped[str | None] = mapped_column(sa.String(55))  # W3C version 00
    # What the notification is about ("order" and the order's id), for clients to link to.
    subject_type: Mapped[str | None] = mapped_column(sa.String(32))
    subject_id: Mapped[str | None] = mapped_column(sa.String(64))

    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="notification", order_by="Delivery.created_at", lazy="selectin"
    )

    @property
    def subject(self) -> Subject | None:
        """What it is about; None for notifications made before subjects were kept."""
        if self.subject_type is None or self.subject_id is None:
            return None
        return Subject(self.subject_type, self.subject_id)


class WebhookEndpoint(Model):
    """A URL a user wants some of their events POSTed to, signed with its secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(USER_ID, index=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    description: Mapped[str | None] = mapped_column(sa.String(500))
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    # Kept in clear: signing needs the key itself (a hash could only verify).
    secret: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # After a rotation, the secret before `secret` signs too until this time (Standard
    # Webhooks allows several signatures), so receivers can switch over at their pace.
    previous_secret: Mapped[str | None] = mapped_column(sa.String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Since when every attempt has failed (None after a success); past the configured
    # period the endpoint is disabled: it gets nothing until its owner recovers it.
    failing_since: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def enabled(self) -> bool:
        """Whether deliveries go out to it (False once disabled for failing too long)."""
        return self.disabled_at is None


class Delivery(Model):
    """One notification on one channel: its attempts, its outcome, and when to try next."""

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'cancelled')", name="status_known"
        ),
        sa.CheckConstraint("channel IN ('email', 'webhook')", name="channel_known"),
        # The delivery worker's query: due pending rows; finished rows stay out of the index.
        sa.Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        ),
        sa.Index("ix_deliveries_user_status", "user_id", "status"),
        # The purge of finished deliveries past their retention: an index range over
        # finished rows only (the predicate is retention.FINISHED, repeated by the purge).
        sa.Index(
            "ix_deliveries_finished_updated",
            "updated_at",
            postgresql_where=sa.text("status <> 'pending'"),
            sqlite_where=sa.text("status <> 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    # None for a webhook test ping, which belongs to no notification.
    notification_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(USER_ID)
    channel: Mapped[str] = mapped_column(sa.String(16))
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="SET NULL"), index=True
    )
    # What to send, fixed when the event arrived so every retry sends the same bytes:
    # email {subject, text, html}; webhook {body} (the exact JSON text that gets signed).
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # While pending: when a worker may (re)try it; a claim pushes it out by the lease.
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow
    )
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # Set by a claim until its outcome is recorded: a webhook `recover` leaves a delivery
    # on the wire alone (making it due again would send it twice).
    claimed_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    notification: Mapped[Notification | None] = relationship(back_populates="deliveries")


class AttemptOutcome(StrEnum):
    """How one webhook attempt went."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookAttempt(Model):
    """One attempt to POST to a webhook endpoint, as its owner sees it in the attempt log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        sa.CheckConstraint("outcome IN ('succeeded', 'failed')", name="outcome_known"),
        # Keyset pages of one endpoint's log, newest first.
        sa.Index("ix_webhook_attempts_endpoint_created", "endpoint_id", "created_at", "id"),
        # The purge of attempts older than the retention, across every endpoint.
        sa.Index("ix_webhook_attempts_created_at", "created_at"),
        # The delivery purge deletes the attempts of the deliveries it deletes.
        sa.Index("ix_webhook_attempts_delivery_id", "delivery_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    # The delivery (its id is the `webhook-id` the receiver saw). No foreign key: the
    # attempt purge and the delivery purge each delete by their own retention, and the
    # delivery purge deletes a delivery's attempts with it.
    delivery_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    attempt: Mapped[int] = mapped_column(sa.Integer)
    outcome: Mapped[str] = mapped_column(sa.String(16))
    # The receiver's HTTP status; None when no answer came (refused, timed out, unreachable).
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    duration_ms: Mapped[int] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    # When the delivery is tried again after this failed attempt (None: not again).
    next_retry_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # When the attempt was made (named so for the keyset pages of shared.pagination).
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
