"""Contacts: the notifications service's projection of auth's users (called by event handlers).

Contacts apply auth's user events in the order of the user's versions, whatever order they
arrive in: the active flag and the profile (email, name) each remember the version that
last set them and ignore anything older. No use case here commits: the inbox does.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.notifications.deliveries import USER_DEACTIVATED
from services.notifications.models import (
    Channel,
    Contact,
    Delivery,
    DeliveryStatus,
    Notification,
)
from services.notifications.rendering import render
from shared.db import locked_row, rows_matched, utcnow


def _locked_contact(session: Session, user_id: str) -> Contact:
    """The user's contact, made (active, nothing applied yet) when missing, row-locked.

    Two events of one user handled at once (two consumers) then apply one after the other.
    """
    now = utcnow()
    return locked_row(
        session, Contact, "user_id", user_id, active=True, created_at=now, updated_at=now
    )


def _set_profile(contact: Contact, *, email: str, name: str, version: int) -> None:
    """Take the email and name of `version` unless a later version set them."""
    if version > contact.profile_version:
        contact.email, contact.name, contact.profile_version = email, name, version
        contact.updated_at = utcnow()


def _set_active(contact: Contact, *, active: bool, version: int) -> bool:
    """Take the active flag of `version` unless a later version set it; True if taken."""
    if version <= contact.active_version:
        return False
    contact.active, contact.active_version = active, version
    contact.updated_at = utcnow()
    return True


def record_contact(
    *, session: Session, user_id: str, email: str, name: str, version: int
) -> Contact:
    """user.registered: the user's address, active; what a later version changed stays."""
    contact = _locked_contact(session, user_id)
    _set_profile(contact, email=email, name=name, version=version)
    _set_active(contact, active=True, version=version)
    session.flush()
    return contact


def update_contact_profile(
    *, session: Session, user_id: str, email: str, name: str, version: int
) -> Contact:
    """user.profile_changed: write to the new address, by the new name, from now on."""
    contact = _locked_contact(session, user_id)
    _set_profile(contact, email=email, name=name, version=version)
    session.flush()
    return contact


def reactivate_contact(*, session: Session, user_id: str, version: int) -> Contact:
    """user.reactivated: write to the user again (what was cancelled stays cancelled)."""
    contact = _locked_contact(session, user_id)
    _set_active(contact, active=True, version=version)
    session.flush()
    return contact


def remember_address(*, session: Session, user_id: str, email: str, name: str) -> Contact:
    """An address from an unversioned event (the verification link's): kept only until a
    versioned one (user.registered, user.profile_changed) is applied."""
    contact = _locked_contact(session, user_id)
    if contact.profile_version == 0:
        contact.email, contact.name, contact.updated_at = email, name, utcnow()
    session.flush()
    return contact


def verify_contact(*, session: Session, user_id: str) -> Contact:
    """Mark a user's address verified; the welcome mail held back until now goes out.

    user.email_verified may overtake user.registered: the contact is then created here,
    and the welcome that follows is mailed at once.
    """
    now = utcnow()
    contact = _locked_contact(session, user_id)
    was_verified = contact.email_verified
    contact.email_verified, contact.updated_at = True, now
    if not was_verified and contact.active and contact.email:
        _mail_held_welcome(session, contact, now)
    session.flush()
    return contact


def _mail_held_welcome(session: Session, contact: Contact, now: datetime) -> None:
    welcome = session.scalar(
        sa.select(Notification).where(
            Notification.user_id == contact.user_id,
            Notification.event_type == "user.registered",
        )
    )
    if welcome is None or any(d.channel == Channel.EMAIL for d in welcome.deliveries):
        return
    rendered = render("user.registered", {"email": contact.email}, name=contact.name)
    session.add(
        Delivery(
            id=uuid.uuid4(),
            notification_id=welcome.id,
            user_id=contact.user_id,
            channel=Channel.EMAIL.value,
            payload={
                "subject": rendered.title,
                "text": rendered.email_text,
                "html": rendered.email_html,
            },
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


def deactivate_contact(*, session: Session, user_id: str, version: int) -> int:
    """Stop writing to a user: mark the contact inactive and cancel pending deliveries.

    A deactivation older than what is applied (a re-activation overtook it) changes nothing.
    """
    now = utcnow()
    if not _set_active(_locked_contact(session, user_id), active=False, version=version):
        return 0
    result = session.execute(
        sa.update(Delivery)
        .where(Delivery.user_id == user_id, Delivery.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.CANCELLED,
            last_error=USER_DEACTIVATED,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    session.flush()
    return rows_matched(result)
