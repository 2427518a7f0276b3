"""Webhook endpoints: a user registers, lists and deletes them; `webhook_body` is what they get.

No Flask here, and no use case commits: the API views own the transaction. Which
notifications reach an endpoint, and how a delivery is sent and retried, is the work of
`services` (notify, the delivery claims) and `delivery` (the signed POST).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.notifications.models import Delivery, DeliveryStatus, WebhookEndpoint
from services.notifications.ssrf import TargetGuard, UnsafeTargetError
from shared.db import as_utc, is_postgresql, utcnow
from shared.errors import ConflictError, NotFoundError, UnprocessableError

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
ENDPOINT_DELETED = "cancelled: the webhook endpoint was deleted"
# The one reason a client gets for any refused webhook target: which rule refused it
# ("resolves to a loopback address (127.0.0.1)", "does not resolve") would tell an outsider
# what our internal DNS knows. The detail is logged.
REFUSED_TARGET = "this webhook target is not allowed: it must be a public http(s) address"
# The first key of the advisory lock that serialises one user's webhook creations (any
# number that no other advisory lock in this database uses).
WEBHOOK_LIMIT_LOCK = 4201


def webhook_body(*, event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> str:
    """The JSON a webhook receives (Standard Webhooks payload shape: type, timestamp, data)."""
    timestamp = as_utc(occurred_at).astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": timestamp, "data": dict(data)},
        separators=(",", ":"),
        sort_keys=True,
    )


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def create_webhook(
    *,
    session: Session,
    user_id: str,
    url: str,
    event_types: Sequence[str],
    description: str | None,
    guard: TargetGuard,
    max_per_user: int,
) -> WebhookEndpoint:
    """Register an endpoint for the user; 422 when its URL may not be called (SSRF guard)."""
    try:
        guard.check_url(url)
    except UnsafeTargetError as exc:
        log.info(
            "webhook target refused",
            extra={"user_id": user_id, "url": url[:200], "reason": str(exc)},
        )
        raise UnprocessableError(REFUSED_TARGET, errors={"url": [REFUSED_TARGET]}) from None
    if is_postgresql(session):
        # One user's creations take turns, or two requests could each count one below the
        # limit and both insert. The lock is the transaction's: gone at commit or rollback.
        session.execute(
            sa.select(sa.func.pg_advisory_xact_lock(WEBHOOK_LIMIT_LOCK, _lock_key(user_id)))
        )
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        user_id=user_id,
        url=url,
        description=description,
        event_types=list(dict.fromkeys(event_types)),  # dedupe, keep the caller's order
        secret=new_webhook_secret(),
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    # Counted after our own insert: the lock above orders this on PostgreSQL; on SQLite
    # (`make run`) the insert took the database's write lock, so a concurrent request's
    # insert waits for our commit and its count then includes our row.
    count = session.scalar(sa.select(sa.func.count()).where(WebhookEndpoint.user_id == user_id))
    if (count or 0) > max_per_user:
        # The caller rolls the insert back with the rest of the request.
        raise ConflictError(f"At most {max_per_user} webhook endpoints per user; delete one.")
    return endpoint


def _lock_key(user_id: str) -> int:
    """A stable signed 32-bit number for `user_id` (PostgreSQL advisory locks take integers)."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def list_webhooks(*, session: Session, user_id: str) -> list[WebhookEndpoint]:
    """The user's own endpoints, oldest first."""
    return list(
        session.scalars(
            sa.select(WebhookEndpoint)
            .where(WebhookEndpoint.user_id == user_id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
    )


def delete_webhook(*, session: Session, user_id: str, webhook_id: uuid.UUID) -> None:
    """Delete one of the user's endpoints and cancel what was still to be sent to it."""
    endpoint = session.scalar(
        sa.select(WebhookEndpoint).where(
            WebhookEndpoint.id == webhook_id, WebhookEndpoint.user_id == user_id
        )
    )
    if endpoint is None:
        raise NotFoundError("No such webhook endpoint.")
    now = utcnow()
    session.execute(
        sa.update(Delivery)
        .where(Delivery.endpoint_id == endpoint.id, Delivery.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.CANCELLED,
            last_error=ENDPOINT_DELETED,
            next_attempt_at=None,
            updated_at=now,
        )
    )
    session.delete(endpoint)
