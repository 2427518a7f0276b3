"""Who published an event: the broker-validated AMQP `user_id`, against the event's producer.

RabbitMQ refuses a publish whose `user_id` property differs from the user of the
connection, so on a delivered message `user_id` names, on the broker's word, the user that
published it. Every publisher sets it (`Publisher`); a consumer given a `ProducerCheck`
accepts an event only when `user_id` is the broker user of the producer the contract
catalogue names for its type. Topic permissions already keep a service from publishing
another's routing keys to `events`; this also closes the default exchange, through which
any consumer may write to any queue by name.

A consumer republishes messages itself (a retry tier, a requeue, the DLQ tool's replay),
and the broker makes it do so under its own user. The producer it read goes in the
PRODUCER_HEADER header, which is believed only on a message whose `user_id` is the
consumer's own user: no other service can publish as that user, and the consumer writes
the header only from the `user_id` it read (or, on its own copies, the header it already
trusted), never from what a sender claimed.

Broker user names. Each service's user is `<prefix><service>` (`orders`, `notifications`
in compose and Kubernetes; `<vhost>-orders` in the tests), so a consumer connected as
`<prefix>notifications` expects `order.*` from `<prefix>orders`. A process whose user is not
named after its service (the local run's `guest`, shared by every process) expects every
event from that same user: with one user for all, there is nobody to tell apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pika

PRODUCER_HEADER = "x-producer-user"


def broker_user(amqp_url: str) -> str:
    """The user name in an AMQP URL (what the broker knows the connection as)."""
    credentials = pika.URLParameters(amqp_url).credentials
    return str(getattr(credentials, "username", "") or "")


def service_user(own_user: str, own_service: str, service: str) -> str:
    """The broker user of `service`, named as `own_user` is for `own_service`."""
    if own_service and own_user.endswith(own_service):
        return own_user[: len(own_user) - len(own_service)] + service
    return own_user  # one user shared by every process


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


def original_producer(properties: Any, own_user: str) -> str:
    """The user that published the original of this message, as far as `own_user` can tell.

    On a copy made under `own_user` (a retry, a requeue, a replay), the header it wrote;
    on anything else, the broker-validated `user_id` ("" when there is none).
    """
    user = _text(getattr(properties, "user_id", None))
    if own_user and user == own_user:
        headers = getattr(properties, "headers", None) or {}
        if PRODUCER_HEADER in headers:
            return _text(headers[PRODUCER_HEADER])
    return user


@dataclass(frozen=True)
class ProducerCheck:
    """What a consumer accepts: each event type from its producer's broker user only."""

    own_user: str
    producers: Mapping[str, str]  # event type -> the broker user allowed to publish it

    @classmethod
    def for_consumer(
        cls, amqp_url: str, consumer: str, producer_services: Mapping[str, str]
    ) -> ProducerCheck:
        """The check of the consumer connecting with `amqp_url` as service `consumer`, given
        the producing service of each event type."""
        own = broker_user(amqp_url)
        users = {kind: service_user(own, consumer, s) for kind, s in producer_services.items()}
        return cls(own, users)

    def refusal(self, event_type: str, properties: Any) -> str | None:
        """Why a message carrying `event_type` is refused, or None when its producer is right."""
        expected = self.producers.get(event_type)
        if expected is None:
            return f"no producer is declared for {event_type!r}"
        actual = original_producer(properties, self.own_user)
        if actual != expected:
            sender = repr(actual) if actual else "a message without user_id"
            return f"{event_type} must be published by broker user {expected!r}, not {sender}"
        return None
