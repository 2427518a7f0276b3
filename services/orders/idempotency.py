"""Idempotency-Key for creates: the first answer to a (user, key) is kept and replayed to
every retry with the same body, for `ttl` (a day by default), then purged.

Use cases, as the rest of the service's: they add to the caller's session and never commit.
`services.place_order` calls them around the order it writes; the worker's purge loop
deletes expired keys in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.orders.models import IdempotencyKey
from shared.db import as_utc, upsert, utcnow
from shared.errors import UnprocessableError

DEFAULT_IDEMPOTENCY_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class StoredResponse:
    """An HTTP answer kept with an Idempotency-Key and replayed as is."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


IDEMPOTENCY_KEYS = cast(sa.Table, IdempotencyKey.__table__)
_EARLIER_ANSWER = sa.select(
    IDEMPOTENCY_KEYS.c.request_hash,
    IDEMPOTENCY_KEYS.c.response_status,
    IDEMPOTENCY_KEYS.c.response_body,
    IDEMPOTENCY_KEYS.c.response_headers,
    IDEMPOTENCY_KEYS.c.created_at,
).where(
    IDEMPOTENCY_KEYS.c.user_id == sa.bindparam("user_id"),
    IDEMPOTENCY_KEYS.c.key == sa.bindparam("key"),
)
_FORGET_EXPIRED_KEY = sa.delete(IDEMPOTENCY_KEYS).where(
    IDEMPOTENCY_KEYS.c.user_id == sa.bindparam("user_id"),
    IDEMPOTENCY_KEYS.c.key == sa.bindparam("key"),
    IDEMPOTENCY_KEYS.c.created_at <= sa.bindparam("cutoff"),
)


def earlier_response(
    session: Session, user_id: str, key: str, fingerprint: str, ttl: timedelta
) -> StoredResponse | None:
    """The stored answer for (user, key), 422 for another body, None when unused or expired."""
    parameters = {"user_id": user_id, "key": key}
    record = session.connection().execute(_EARLIER_ANSWER, parameters).one_or_none()
    if record is None:
        return None
    cutoff = utcnow() - ttl
    if as_utc(record.created_at) <= cutoff:
        # Expired: forget it and treat the key as new. Only if still expired, so that a
        # concurrent request that already replaced it keeps its record.
        session.connection().execute(_FORGET_EXPIRED_KEY, {**parameters, "cutoff": cutoff})
        return None
    if record.request_hash != fingerprint:
        raise UnprocessableError(
            "This Idempotency-Key was already used with a different request body.",
            errors={"Idempotency-Key": ["Already used with a different request body."]},
        )
    return StoredResponse(
        status=record.response_status,
        body=record.response_body,
        headers=dict(record.response_headers),
    )


def keep_response(
    session: Session,
    user_id: str,
    key: str,
    fingerprint: str,
    response: StoredResponse,
    created_at: datetime,
) -> bool:
    """Store the answer under (user, key); False when a concurrent request stored one first.

    Written before the order: a concurrent retry with the same key waits here (on
    PostgreSQL's unique index) until that transaction ends, before doing any work. ON
    CONFLICT DO NOTHING rather than a savepoint around a plain INSERT: losing the race
    leaves this transaction usable without the SAVEPOINT and RELEASE round trips.
    """
    stored = session.connection().execute(
        upsert(session, IdempotencyKey)
        .values(
            user_id=user_id,
            key=key,
            request_hash=fingerprint,
            response_status=response.status,
            response_body=response.body,
            response_headers=response.headers,
            created_at=created_at,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(IDEMPOTENCY_KEYS.c.key)
    )
    return stored.first() is not None


# -- housekeeping --------------------------------------------------------------------------


def purge_expired_idempotency_keys(
    *, session: Session, ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL, batch_size: int = 1000
) -> int:
    """Delete one batch of idempotency keys older than `ttl`; return how many.

    The caller commits each batch and calls again while a full batch went: small batches
    keep each transaction (and its locks) short on a large backlog.
    """
    cutoff = utcnow() - ttl
    keys: Sequence[Any] = session.execute(
        sa.select(IdempotencyKey.user_id, IdempotencyKey.key)
        .where(IdempotencyKey.created_at <= cutoff)
        .limit(batch_size)
    ).all()
    if not keys:
        return 0
    session.execute(
        sa.delete(IdempotencyKey)
        .where(
            sa.tuple_(IdempotencyKey.user_id, IdempotencyKey.key).in_([tuple(k) for k in keys]),
            IdempotencyKey.created_at <= cutoff,
        )
        .execution_options(synchronize_session=False)
    )
    return len(keys)
