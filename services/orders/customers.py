"""The customer projection: what orders knows of auth's users, kept from their user events.

Called by the event handlers inside the inbox transaction (the inbox row, the change and
its events commit at once). Separate from placing orders, which only reads the projection
(`services._refuse_deactivated_customer`), and from changing them, whose transition a
deactivation reuses to cancel the user's open orders.

The projection applies auth's user events in the order of the user's versions, whatever
order they arrive in: the active flag and the profile (email, name) each remember the
version that last set them and ignore anything older.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.orders.models import CANCELLABLE, Customer, Order, OrderStatus
from services.orders.services import _transition
from shared.db import locked_row, utcnow


def _locked_customer(session: Session, user_id: str) -> Customer:
    """The user's customer row, made (active, nothing applied yet) when missing, locked.

    FOR UPDATE: it waits for every order of this user still being placed (each holds FOR
    SHARE on the row, or inserted it; see services._refuse_deactivated_customer), and two events of
    one user apply one after the other, each seeing what the other did.
    """
    return locked_row(session, Customer, "user_id", user_id, active=True, updated_at=utcnow())


def _set_profile(customer: Customer, *, email: str, name: str, version: int) -> bool:
    """Take the email and name of `version` unless a later version set them; True if taken."""
    if version <= customer.profile_version:
        return False
    customer.email, customer.name, customer.profile_version = email, name, version
    customer.updated_at = utcnow()
    return True


def _set_active(customer: Customer, *, active: bool, version: int) -> bool:
    """Take the active flag of `version` unless a later version set it; True if taken."""
    if version <= customer.active_version:
        return False
    customer.active, customer.active_version = active, version
    customer.updated_at = utcnow()
    return True


def record_customer(*, session: Session, user_id: str, email: str, name: str, version: int) -> None:
    """user.registered: the user's profile, active; what a later version changed stays."""
    customer = _locked_customer(session, user_id)
    _set_profile(customer, email=email, name=name, version=version)
    _set_active(customer, active=True, version=version)
    session.flush()


def update_customer_profile(
    *, session: Session, user_id: str, email: str, name: str, version: int
) -> None:
    """user.profile_changed: the new email and name, unless a later version is applied."""
    _set_profile(_locked_customer(session, user_id), email=email, name=name, version=version)
    session.flush()


def reactivate_customer(*, session: Session, user_id: str, version: int) -> None:
    """user.reactivated: accept the user's orders again, unless a later version is applied."""
    _set_active(_locked_customer(session, user_id), active=True, version=version)
    session.flush()


def deactivate_customer(*, session: Session, user_id: str, version: int) -> list[Order]:
    """user.deactivated: refuse the user's future orders and cancel their open ones.

    One order.status_changed per cancelled order. A deactivation older than what is
    applied (a re-activation overtook it) changes nothing. One that arrives before
    user.registered is remembered the same way.
    """
    if not _set_active(_locked_customer(session, user_id), active=False, version=version):
        return []
    # The row lock waited for the orders still being placed: the query sees them all, and
    # orders placed after it see `active` false.
    orders = list(
        session.scalars(
            sa.select(Order)
            .where(Order.user_id == user_id, Order.status.in_([s.value for s in CANCELLABLE]))
            .order_by(Order.created_at)
            .with_for_update()
        ).all()
    )
    for order in orders:
        _transition(session, order, OrderStatus.CANCELLED, if_match=None)
    session.flush()
    return orders
