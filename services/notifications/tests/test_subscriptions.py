"""Every event type notifications subscribes to is either told with its templates or silent."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from services.notifications.handlers import HANDLERS
from services.notifications.models import Notification, db
from services.notifications.rendering import TEMPLATES_DIR
from services.notifications.tests.conftest import (
    order_created,
    order_status_changed,
    user_deactivated,
    user_email_verified,
    user_profile_changed,
    user_reactivated,
    user_registered,
    user_registration_attempted,
    user_verification_requested,
)
from shared import contracts
from shared.events import Event

pytestmark = pytest.mark.integration

ADA = "user-ada"
TEMPLATE_SUFFIXES = (".subject.txt", ".txt", ".html")
# One event per subscribed type, as its producer publishes it.
SAMPLES: dict[str, Callable[[], Event]] = {
    "user.registered": lambda: user_registered(ADA),
    "user.deactivated": lambda: user_deactivated(ADA),
    "user.reactivated": lambda: user_reactivated(ADA, 3),
    "user.profile_changed": lambda: user_profile_changed(ADA, "ada@example.org", "Ada L", 3),
    "user.verification_requested": lambda: user_verification_requested(ADA),
    "user.email_verified": lambda: user_email_verified(ADA),
    "user.registration_attempted": lambda: user_registration_attempted(ADA),
    "order.created": lambda: order_created(ADA),
    "order.status_changed": lambda: order_status_changed(
        ADA, "0b8a3a52-3c43-4d35-9a55-1f3c3a1e2b10", "pending", "confirmed"
    ),
}


def test_notifications_subscribes_only_to_types_the_catalogue_says_it_consumes() -> None:
    assert set(HANDLERS) <= set(contracts.CATALOGUE.consumed_by("notifications"))


@pytest.mark.parametrize("event_type", sorted(HANDLERS))
def test_a_subscribed_type_that_notifies_has_all_its_templates_and_one_that_does_not_has_none(
    app: Flask, consume: Callable[[Event], None], event_type: str
) -> None:
    assert event_type in SAMPLES, f"add a sample {event_type} event to SAMPLES"
    templates = [(TEMPLATES_DIR / f"{event_type}{suffix}").exists() for suffix in TEMPLATE_SUFFIXES]

    consume(SAMPLES[event_type]())

    with app.app_context():
        told = db.session.scalars(
            sa.select(Notification).where(Notification.event_type == event_type)
        ).all()
        if told:
            assert templates == [True, True, True]
            assert all(n.title and n.body for n in told)
        else:
            assert templates == [False, False, False], f"{event_type} has unused templates"
