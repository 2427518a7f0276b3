"""The event contracts: one typed definition per event type and version, for every service.

Producers build events only here (`build(UserRegisteredV1(...))`); consumers read them only
here (`parse(event)` gives the typed data). The AsyncAPI document (docs/asyncapi.yaml,
served by the gateway at /asyncapi.json) is generated from this catalogue, and the JSON
Schema of every published version is kept in `snapshots/` for the compatibility gate.

Versions. Every event names its version in the CloudEvents `dataschema` attribute:
`urn:flask-microservices-suite:events:<type>:<version>` (also the `$id` of that schema in
the AsyncAPI document). A consumer accepts the versions the catalogue it was built with
knows; any other dataschema, an unknown type, a source other than the type's producer
(`user.*` only from /auth, `order.*` only from /orders), or data with a missing, extra or
mistyped field is an `InvalidEvent`, which the consumer dead-letters at once with the reason.

The evolution rule:

* An optional field (with a default) may be added to a published version in place. Since
  consumers refuse fields they do not know, producers fill it only once every consumer
  runs the catalogue that has it (deploy consumers first).
* Anything else (removing or renaming a field, changing its type or a limit, adding a
  required field) is a new version: a new dataclass `<Name>V<n+1>` and a new entry in
  `CATALOGUE`. The producer publishes both versions side by side (two outbox rows, same
  transaction). Each consumer is declared on exactly one version of a type (`consumers`)
  and acknowledges the other unread (`parse_for`), so a change is applied once; a consumer
  moves by moving its name to the new version. Once no consumer is left on the old one,
  it is retired (removed from the catalogue with its snapshot, on purpose).

The compatibility gate (shared.contracts.compatibility, run by the tests) holds every
published version to that rule against its snapshot; `make contract-snapshots` records the
snapshot of a new version or of an added optional field, and refuses a breaking change.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.catalogue import (
    AUTH,
    CATALOGUE,
    GATEWAY,
    NOTIFICATIONS_SERVICE,
    ORDERS,
    ORDERS_SERVICE,
    OrderCreatedV1,
    OrderItemV1,
    OrderStatusChangedV1,
    UserDeactivatedV1,
    UserEmailVerifiedV1,
    UserProfileChangedV1,
    UserReactivatedV1,
    UserRegisteredV1,
    UserRegistrationAttemptedV1,
    UserRoleChangedV1,
    UserVerificationRequestedV1,
)
from shared.contracts.registry import DATASCHEMA_PREFIX, Catalogue, Contract, dataschema
from shared.events import Event


def build(data: object, *, subject: str | None = None) -> Event:
    """The event for `data` (a catalogue dataclass), stamped with its type, source and version."""
    return CATALOGUE.build(data, subject=subject)


def parse(event: Event) -> Any:
    """The typed data of `event`; InvalidEvent when the catalogue does not vouch for it."""
    return CATALOGUE.parse(event)


def parse_for(event: Event, consumer: str) -> Any | None:
    """parse() for one consumer: None when it is declared for another version of the type."""
    return CATALOGUE.parse_for(event, consumer)


__all__ = [
    "AUTH",
    "CATALOGUE",
    "DATASCHEMA_PREFIX",
    "GATEWAY",
    "NOTIFICATIONS_SERVICE",
    "ORDERS",
    "ORDERS_SERVICE",
    "Catalogue",
    "Contract",
    "OrderCreatedV1",
    "OrderItemV1",
    "OrderStatusChangedV1",
    "UserDeactivatedV1",
    "UserEmailVerifiedV1",
    "UserProfileChangedV1",
    "UserReactivatedV1",
    "UserRegisteredV1",
    "UserRegistrationAttemptedV1",
    "UserRoleChangedV1",
    "UserVerificationRequestedV1",
    "build",
    "dataschema",
    "parse",
    "parse_for",
]
