"""Event handlers of the orders service: auth's user events keep the customer projection.

Each handler runs inside the inbox transaction (`shared.inbox.inbox_handler`), so the
inbox row, the change and the events it records commit together, and a redelivered event
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from services.orders import customers
from services.orders.models import Inbox, db
from shared.contracts import (
    UserDeactivatedV1,
    UserProfileChangedV1,
    UserReactivatedV1,
    UserRegisteredV1,
)
from shared.contracts.handlers import Handlers
from shared.events import Event
from shared.inbox import inbox_handler

CONSUMER = "orders"
# Each handler gets its data parsed (and trusted by source) by shared.contracts.
HANDLERS = Handlers(CONSUMER)


# user.registered: remember the customer (email and name, active).
HANDLERS.use_case(UserRegisteredV1, customers.record_customer)
# user.profile_changed: the customer's new email and name.
HANDLERS.use_case(UserProfileChangedV1, customers.update_customer_profile)
# user.deactivated: refuse the user's new orders and cancel the open ones.
HANDLERS.use_case(UserDeactivatedV1, customers.deactivate_customer)
# user.reactivated: accept the user's orders again.
HANDLERS.use_case(UserReactivatedV1, customers.reactivate_customer)


def event_handler(app: Flask) -> Callable[[Event], None]:
    """What the consumer calls per event: inbox row + handler in one committed transaction."""
    return inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
