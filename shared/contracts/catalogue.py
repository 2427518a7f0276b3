"""Every event type and version the suite publishes: the data each one carries.

One frozen dataclass per (type, version), named after the event in the past tense with
its version (`UserRegisteredV1`); `CATALOGUE` says who produces and who consumes it.
Field constraints (lengths, minimums, patterns) are what every consumer can store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, Strict, StringConstraints

from shared.contracts.registry import Catalogue, Contract

AUTH = "/auth"
ORDERS = "/orders"

# Consumers, by the name their queue is built from (`<consumer>.events`).
ORDERS_SERVICE = "orders"
NOTIFICATIONS_SERVICE = "notifications"
GATEWAY = "gateway"

# An unknown field is refused (extra="forbid"): a renamed field fails loudly at the first
# consumer instead of turning into a silently missing value. Strict() per field: a number
# is never read from a string, nor a boolean from a number.
_DATA = ConfigDict(extra="forbid")

Id = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=64)]
Email = Annotated[
    str, Strict(), StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
]
Name = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=200)]
Role = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=32)]
Status = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=32)]
Currency = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Z]{3}$")]
Sku = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=100)]
Url = Annotated[str, Strict(), StringConstraints(max_length=2048, pattern=r"^https?://\S+$")]
Cents = Annotated[int, Strict(), Field(ge=0)]
Count = Annotated[int, Strict(), Field(ge=1)]
# The per-user or per-order counter: projections ignore anything older than they applied.
Version = Annotated[int, Strict(), Field(ge=1)]


@dataclass(frozen=True, kw_only=True)
class UserEvent:
    """What every event about the state of one user carries: whose, and at which version."""

    __pydantic_config__: ClassVar[ConfigDict] = _DATA
    user_id: Id
    version: Version


@dataclass(frozen=True, kw_only=True)
class UserRegisteredV1(UserEvent):
    """A new account: orders keeps the customer, notifications the contact."""

    email: Email
    name: Name


@dataclass(frozen=True, kw_only=True)
class UserDeactivatedV1(UserEvent):
    """The account may no longer be used: no orders, no mail, no live tokens."""


@dataclass(frozen=True, kw_only=True)
class UserReactivatedV1(UserEvent):
    """A deactivated account is usable again."""


@dataclass(frozen=True, kw_only=True)
class UserRoleChangedV1(UserEvent):
    """The user's role changed: tokens issued before it carry the old one."""

    role: Role


@dataclass(frozen=True, kw_only=True)
class UserProfileChangedV1(UserEvent):
    """The user's address or name changed (both given, as they are now)."""

    email: Email
    name: Name


@dataclass(frozen=True, kw_only=True)
class UserEmailVerifiedV1(UserEvent):
    """The user proved they own their address."""


@dataclass(frozen=True, kw_only=True)
class UserVerificationRequestedV1:
    """Mail this link to the address so its owner can verify it (no user version: a message)."""

    __pydantic_config__: ClassVar[ConfigDict] = _DATA
    user_id: Id
    email: Email
    name: Name
    verify_url: Url
    # Lax on purpose: on the wire it is an RFC 3339 string, which strict mode would refuse.
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class UserRegistrationAttemptedV1:
    """Someone tried to register the user's address again: warn its owner."""

    __pydantic_config__: ClassVar[ConfigDict] = _DATA
    user_id: Id


@dataclass(frozen=True, kw_only=True)
class OrderItemV1:
    """One line of an order, at the price the catalogue gave it."""

    __pydantic_config__: ClassVar[ConfigDict] = _DATA
    sku: Sku
    quantity: Count
    unit_price_cents: Cents


@dataclass(frozen=True, kw_only=True)
class OrderCreatedV1:
    """A customer placed an order."""

    __pydantic_config__: ClassVar[ConfigDict] = _DATA
    order_id: Id
    user_id: Id
    status: Status
    total_cents: Cents
    currency: Currency
    items: Annotated[list[OrderItemV1], Field(max_length=1000)]
    version: Version


@dataclass(frozen=True, kw_only=True)
class OrderStatusChangedV1:
    """An order moved from one status to another."""

    __pydantic_config__: ClassVar[ConfigDict] = _DATA
    order_id: Id
    user_id: Id
    # `from` is a Python keyword: the attribute is `from_`, the wire name `from`.
    from_: Annotated[Status, Field(validation_alias="from", serialization_alias="from")]
    to: Status
    version: Version


def _user(data: Any) -> str:
    return str(data.user_id)


def _order(data: Any) -> str:
    return str(data.order_id)


CATALOGUE = Catalogue(
    [
        Contract(
            type="user.registered",
            version=1,
            data=UserRegisteredV1,
            producer=AUTH,
            consumers=(ORDERS_SERVICE, NOTIFICATIONS_SERVICE),
            subject=_user,
            summary="A user registered (or an admin was created).",
        ),
        Contract(
            type="user.deactivated",
            version=1,
            data=UserDeactivatedV1,
            producer=AUTH,
            consumers=(ORDERS_SERVICE, NOTIFICATIONS_SERVICE, GATEWAY),
            subject=_user,
            summary="An admin deactivated a user.",
        ),
        Contract(
            type="user.reactivated",
            version=1,
            data=UserReactivatedV1,
            producer=AUTH,
            consumers=(ORDERS_SERVICE, NOTIFICATIONS_SERVICE),
            subject=_user,
            summary="An admin re-activated a user.",
        ),
        Contract(
            type="user.role_changed",
            version=1,
            data=UserRoleChangedV1,
            producer=AUTH,
            consumers=(GATEWAY,),
            subject=_user,
            summary="An admin changed a user's role.",
        ),
        Contract(
            type="user.profile_changed",
            version=1,
            data=UserProfileChangedV1,
            producer=AUTH,
            consumers=(ORDERS_SERVICE, NOTIFICATIONS_SERVICE),
            subject=_user,
            summary="A user's email address or name changed.",
        ),
        Contract(
            type="user.email_verified",
            version=1,
            data=UserEmailVerifiedV1,
            producer=AUTH,
            consumers=(NOTIFICATIONS_SERVICE,),
            subject=_user,
            summary="A user verified their email address.",
        ),
        Contract(
            type="user.verification_requested",
            version=1,
            data=UserVerificationRequestedV1,
            producer=AUTH,
            consumers=(NOTIFICATIONS_SERVICE,),
            subject=_user,
            summary="Send the address-verification link to a user.",
        ),
        Contract(
            type="user.registration_attempted",
            version=1,
            data=UserRegistrationAttemptedV1,
            producer=AUTH,
            consumers=(NOTIFICATIONS_SERVICE,),
            subject=_user,
            summary="A registration used an address that is taken: warn its owner.",
        ),
        Contract(
            type="order.created",
            version=1,
            data=OrderCreatedV1,
            producer=ORDERS,
            consumers=(NOTIFICATIONS_SERVICE,),
            subject=_order,
            summary="A customer placed an order.",
        ),
        Contract(
            type="order.status_changed",
            version=1,
            data=OrderStatusChangedV1,
            producer=ORDERS,
            consumers=(NOTIFICATIONS_SERVICE,),
            subject=_order,
            summary="An order changed status (confirmed, shipped, delivered, cancelled).",
        ),
    ]
)
