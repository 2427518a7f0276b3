"""Webhook endpoints: a user registers, lists and deletes them; `webhook_body` is what they get.

Self-service beside that: the attempt log of an endpoint, `recover` (send again what it
missed since a given time), secret rotation with a grace period, a test ping; and what
the delivery loop records after each attempt (`record_webhook_attempt`), which disables
an endpoint that kept failing and tells its owner in the app.

No Flask here, and no use case commits: the API views and the delivery loop own the
transaction. Which notifications reach an endpoint, and how a delivery is sent and
retried, is the work of `services` (notify), `deliveries` (the claims) and `delivery`
(the signed POST).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.notifications.models import (
    AttemptOutcome,
    Channel,
    Delivery,
    DeliveryStatus,
    Notification,
    WebhookAttempt,
    WebhookEndpoint,
)
from services.notifications.ssrf import TargetGuard, UnsafeTargetError
from shared.db import as_utc, is_postgresql, rows_matched, utcnow
from shared.errors import ConflictError, NotFoundError, UnprocessableError
from shared.pagination import PageKey, keyset_page

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
ENDPOINT_DELETED = "cancelled: the webhook endpoint was deleted"
ENDPOINT_DISABLED = "cancelled: the webhook endpoint is disabled (it kept failing); recover it"
# The event type of a test ping's body, and of the in-app note about a disabled endpoint.
PING_EVENT = "webhook.ping"
DISABLED_EVENT = "webhook.disabled"
MAX_ATTEMPT_ERROR_CHARS = 500
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


def get_webhook(
    *, session: Session, user_id: str, webhook_id: uuid.UUID, lock: bool = False
) -> WebhookEndpoint:
    """One of the user's endpoints (row-locked with `lock`); 404 for anyone else's."""
    query = sa.select(WebhookEndpoint).where(
        WebhookEndpoint.id == webhook_id, WebhookEndpoint.user_id == user_id
    )
    if lock:
        query = query.with_for_update()
    endpoint = session.scalar(query)
    if endpoint is None:
        raise NotFoundError("No such webhook endpoint.")
    return endpoint


def delete_webhook(*, session: Session, user_id: str, webhook_id: uuid.UUID) -> None:
    """Delete one of the user's endpoints and cancel what was still to be sent to it."""
    endpoint = get_webhook(session=session, user_id=user_id, webhook_id=webhook_id)
    now = utcnow()
    session.execute(
        sa.update(Delivery)
        .where(
            in_lock_order(
                Delivery.endpoint_id == endpoint.id, Delivery.status == DeliveryStatus.PENDING
            )
        )
        .values(
            status=DeliveryStatus.CANCELLED,
            last_error=ENDPOINT_DELETED,
            next_attempt_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.delete(endpoint)


def in_lock_order(*conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """`Delivery.id IN (...)` of the rows matching `conditions`, locked in the order of their ids.

    For an UPDATE of many deliveries (recover, delete, the operator's retry). A plain UPDATE
    locks its rows in whatever order its scan meets them; two such UPDATEs of the same
    rows (two recovers at once, a recover and a deletion) can then each hold a row the
    other waits for, and PostgreSQL aborts one of them (a deadlock, a 500). In one order,
    the second waits for the first and goes on once it commits. The endpoint's row comes
    after the deliveries' rows, the order the delivery loop locks them in (a delivery,
    then its endpoint). SQLite ignores FOR UPDATE: one writer at a time there anyway.
    """
    locked = sa.select(Delivery.id).where(*conditions).order_by(Delivery.id).with_for_update()
    return Delivery.id.in_(locked.scalar_subquery())


# -- self-service (called by the API, which commits) --------------------------------------


def rotate_webhook_secret(
    *, session: Session, user_id: str, webhook_id: uuid.UUID, grace: timedelta, now: datetime
) -> WebhookEndpoint:
    """A new signing secret; the current one keeps signing too until `now + grace`.

    Only one earlier secret is kept: rotating again within a grace period ends the older.
    """
    endpoint = get_webhook(session=session, user_id=user_id, webhook_id=webhook_id, lock=True)
    if grace > timedelta(0):
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + grace
    else:
        endpoint.previous_secret = endpoint.previous_secret_expires_at = None
    endpoint.secret = new_webhook_secret()
    session.flush()
    return endpoint


def ping_webhook(
    *, session: Session, user_id: str, webhook_id: uuid.UUID, now: datetime
) -> Delivery:
    """Queue a signed test event (`webhook.ping`) for the endpoint, tried once.

    It goes out through the delivery worker like any webhook (the API processes call
    nothing outside), to a disabled endpoint as well: a ping tells whether it is back.
    Its outcome shows in the attempt log under the delivery's id.
    """
    endpoint = get_webhook(session=session, user_id=user_id, webhook_id=webhook_id)
    body = webhook_body(
        event_type=PING_EVENT, occurred_at=now, data={"webhook_id": str(endpoint.id)}
    )
    delivery = Delivery(
        id=uuid.uuid4(),
        notification_id=None,
        user_id=user_id,
        channel=Channel.WEBHOOK.value,
        endpoint_id=endpoint.id,
        payload={"body": body, "ping": True},
        status=DeliveryStatus.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery


def recover_webhook(
    *, session: Session, user_id: str, webhook_id: uuid.UUID, since: datetime, now: datetime
) -> int:
    """Send every event since `since` that the endpoint did not get, once each; how many.

    Enables the endpoint again if it was disabled. What counts: deliveries of the
    endpoint created since `since` that failed for good, were cancelled while it was
    disabled, or wait for a retry (due now instead of after their backoff). A delivery
    that was sent, or is on the wire right now (claimed), is left alone: calling this
    twice, or while the worker retries, sends nothing twice. A `since` in the future
    matches no delivery yet: nothing is queued (0), the endpoint is still enabled.
    """
    endpoint = get_webhook(session=session, user_id=user_id, webhook_id=webhook_id)
    missed = sa.or_(
        Delivery.status == DeliveryStatus.FAILED,
        sa.and_(
            Delivery.status == DeliveryStatus.CANCELLED,
            Delivery.last_error == ENDPOINT_DISABLED,
        ),
        sa.and_(
            Delivery.status == DeliveryStatus.PENDING,
            sa.or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
        ),
    )
    result = session.execute(
        sa.update(Delivery)
        .where(
            in_lock_order(
                Delivery.endpoint_id == endpoint.id,
                Delivery.notification_id.is_not(None),  # events, not test pings
                Delivery.created_at >= since,
                missed,
            )
        )
        # A fresh set of attempts, due now; the claim that picks it up sends it once.
        .values(
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            claimed_until=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    # The endpoint's row after the deliveries' rows (see `in_lock_order`): locking it
    # first would wait for a delivery loop that holds a delivery and waits for it.
    endpoint.disabled_at = endpoint.failing_since = None
    session.flush()
    return rows_matched(result)


@dataclass(frozen=True)
class AttemptPage:
    """One page of an endpoint's attempt log, newest first."""

    items: list[WebhookAttempt]
    next_cursor: PageKey | None


def list_webhook_attempts(
    *,
    session: Session,
    user_id: str,
    webhook_id: uuid.UUID,
    outcome: str | None = None,
    limit: int = 20,
    after: PageKey | None = None,
) -> AttemptPage:
    """The attempts to POST to one of the user's endpoints, newest first; 404 for others."""
    endpoint = get_webhook(session=session, user_id=user_id, webhook_id=webhook_id)
    query = sa.select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint.id)
    if outcome is not None:
        query = query.where(WebhookAttempt.outcome == outcome)
    items, next_cursor = keyset_page(
        session,
        query,
        created_at=WebhookAttempt.created_at,
        id=WebhookAttempt.id,
        limit=limit,
        after=after,
    )
    return AttemptPage(items=items, next_cursor=next_cursor)


# -- after each attempt (called by the delivery loop, which commits) ----------------------


@dataclass(frozen=True)
class AttemptResult:
    """How one webhook POST went, as the delivery loop saw it."""

    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_type: str
    attempt: int
    succeeded: bool
    status_code: int | None
    duration_ms: int
    error: str | None = None


def record_webhook_attempt(
    *, session: Session, result: AttemptResult, now: datetime, disable_after: timedelta
) -> bool:
    """Log an attempt; disable the endpoint once it has failed for `disable_after`.

    A success ends the endpoint's failing period. Disabling cancels what was still to
    be sent to it (`recover` sends it later) and tells its owner in the app. True when
    this attempt disabled the endpoint.
    """
    delivery = session.get(Delivery, result.delivery_id)
    next_retry_at = None
    if (
        not result.succeeded
        and delivery is not None
        and delivery.status == DeliveryStatus.PENDING
        and delivery.attempts == result.attempt
    ):
        next_retry_at = delivery.next_attempt_at
    # Locked: the attempts of one endpoint recorded by several workers take turns at its
    # failing period, and a deletion either waits for this log row or it is not written.
    endpoint = session.get(WebhookEndpoint, result.endpoint_id, with_for_update=True)
    if endpoint is None:
        return False  # deleted meanwhile: its log went with it
    session.add(
        WebhookAttempt(
            id=uuid.uuid4(),
            endpoint_id=endpoint.id,
            delivery_id=result.delivery_id,
            event_type=result.event_type,
            attempt=result.attempt,
            outcome=(AttemptOutcome.SUCCEEDED if result.succeeded else AttemptOutcome.FAILED).value,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            error=result.error[:MAX_ATTEMPT_ERROR_CHARS] if result.error else None,
            next_retry_at=next_retry_at,
            created_at=now,
        )
    )
    disabled = False
    if result.succeeded:
        endpoint.failing_since = None
    elif endpoint.failing_since is None:
        endpoint.failing_since = now
    elif endpoint.enabled and now - as_utc(endpoint.failing_since) >= disable_after:
        _disable(session, endpoint, now)
        disabled = True
    session.flush()
    return disabled


def purge_webhook_attempts(
    session: Session, older_than: timedelta, *, limit: int, now: datetime | None = None
) -> int:
    """Delete at most `limit` attempts made longer than `older_than` ago; how many.

    The attempt log is for a user looking into recent failures; without a purge it would
    grow by every webhook POST forever. The caller commits.
    """
    cutoff = (now or utcnow()) - older_than
    batch = sa.select(WebhookAttempt.id).where(WebhookAttempt.created_at < cutoff).limit(limit)
    result = session.execute(
        sa.delete(WebhookAttempt)
        .where(WebhookAttempt.id.in_(batch.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


def _disable(session: Session, endpoint: WebhookEndpoint, now: datetime) -> None:
    """Stop sending to an endpoint that kept failing, and tell its owner in the app."""
    endpoint.disabled_at = now
    # Rows another worker holds (recording their own attempt) are skipped rather than
    # waited for: that worker may be waiting for this endpoint's row, which we hold. What
    # it leaves pending is cancelled by the claim that would send it.
    pending = (
        sa.select(Delivery.id)
        .where(
            Delivery.endpoint_id == endpoint.id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.notification_id.is_not(None),  # a ping still goes: it tests the endpoint
        )
        .with_for_update(skip_locked=True)
    )
    session.execute(
        sa.update(Delivery)
        .where(Delivery.id.in_(pending.scalar_subquery()))
        .values(
            status=DeliveryStatus.CANCELLED.value,
            last_error=ENDPOINT_DISABLED,
            next_attempt_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    failing_for = now - as_utc(endpoint.failing_since or now)
    hours = failing_for.total_seconds() / 3600
    session.add(
        Notification(
            id=uuid.uuid4(),
            user_id=endpoint.user_id,
            # No event behind it: an id of its own keeps the column's uniqueness.
            event_id=str(uuid.uuid4()),
            event_type=DISABLED_EVENT,
            title="A webhook endpoint was disabled",
            body=(
                f"Every delivery to {endpoint.url[:300]} failed for {hours:.1f} hours, so it "
                "is disabled and receives nothing for now. Fix the receiver, then recover "
                "the endpoint: what it missed is sent again, once each."
            ),
            created_at=now,
            subject_type="webhook",
            subject_id=str(endpoint.id),
        )
    )
    log.warning(
        "webhook endpoint disabled: it kept failing",
        extra={"webhook_id": str(endpoint.id), "failing_seconds": failing_for.total_seconds()},
    )
