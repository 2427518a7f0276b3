from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast
from uuid import UUID

from attrs import define as _attrs_define

from ..models.notifications_webhook_attempt_outcome import NotificationsWebhookAttemptOutcome
from ..types import UNSET, Unset

T = TypeVar("T", bound="NotificationsWebhookAttempt")


@_attrs_define
class NotificationsWebhookAttempt:
    """
    Attributes:
        id (UUID | Unset):
        delivery_id (UUID | Unset): The `webhook-id` the receiver saw (retries share it).
        event_type (str | Unset):  Example: order.created.
        attempt (int | Unset):  Example: 1.
        outcome (NotificationsWebhookAttemptOutcome | Unset):  Example: failed.
        status_code (int | None | Unset): The receiver's HTTP status; null without an answer. Example: 503.
        duration_ms (int | Unset):  Example: 84.
        error (None | str | Unset):  Example: HTTP 503: Service Unavailable.
        next_retry_at (datetime.datetime | None | Unset): When the delivery is tried again; null if it is not.
        attempted_at (datetime.datetime | Unset):
    """

    id: UUID | Unset = UNSET
    delivery_id: UUID | Unset = UNSET
    event_type: str | Unset = UNSET
    attempt: int | Unset = UNSET
    outcome: NotificationsWebhookAttemptOutcome | Unset = UNSET
    status_code: int | None | Unset = UNSET
    duration_ms: int | Unset = UNSET
    error: None | str | Unset = UNSET
    next_retry_at: datetime.datetime | None | Unset = UNSET
    attempted_at: datetime.datetime | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id: str | Unset = UNSET
        if not isinstance(self.id, Unset):
            id = str(self.id)

        delivery_id: str | Unset = UNSET
        if not isinstance(self.delivery_id, Unset):
            delivery_id = str(self.delivery_id)

        event_type = self.event_type

        attempt = self.attempt

        outcome: str | Unset = UNSET
        if not isinstance(self.outcome, Unset):
            outcome = self.outcome.value

        status_code: int | None | Unset
        if isinstance(self.status_code, Unset):
            status_code = UNSET
        else:
            status_code = self.status_code

        duration_ms = self.duration_ms

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        next_retry_at: None | str | Unset
        if isinstance(self.next_retry_at, Unset):
            next_retry_at = UNSET
        elif isinstance(self.next_retry_at, datetime.datetime):
            next_retry_at = self.next_retry_at.isoformat()
        else:
            next_retry_at = self.next_retry_at

        attempted_at: str | Unset = UNSET
        if not isinstance(self.attempted_at, Unset):
            attempted_at = self.attempted_at.isoformat()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if id is not UNSET:
            field_dict["id"] = id
        if delivery_id is not UNSET:
            field_dict["delivery_id"] = delivery_id
        if event_type is not UNSET:
            field_dict["event_type"] = event_type
        if attempt is not UNSET:
            field_dict["attempt"] = attempt
        if outcome is not UNSET:
            field_dict["outcome"] = outcome
        if status_code is not UNSET:
            field_dict["status_code"] = status_code
        if duration_ms is not UNSET:
            field_dict["duration_ms"] = duration_ms
        if error is not UNSET:
            field_dict["error"] = error
        if next_retry_at is not UNSET:
            field_dict["next_retry_at"] = next_retry_at
        if attempted_at is not UNSET:
            field_dict["attempted_at"] = attempted_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _id = d.pop("id", UNSET)
        id: UUID | Unset
        if isinstance(_id, Unset):
            id = UNSET
        else:
            id = UUID(_id)

        _delivery_id = d.pop("delivery_id", UNSET)
        delivery_id: UUID | Unset
        if isinstance(_delivery_id, Unset):
            delivery_id = UNSET
        else:
            delivery_id = UUID(_delivery_id)

        event_type = d.pop("event_type", UNSET)

        attempt = d.pop("attempt", UNSET)

        _outcome = d.pop("outcome", UNSET)
        outcome: NotificationsWebhookAttemptOutcome | Unset
        if isinstance(_outcome, Unset):
            outcome = UNSET
        else:
            outcome = NotificationsWebhookAttemptOutcome(_outcome)

        def _parse_status_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        status_code = _parse_status_code(d.pop("status_code", UNSET))

        duration_ms = d.pop("duration_ms", UNSET)

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_next_retry_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                next_retry_at_type_0 = datetime.datetime.fromisoformat(data)

                return next_retry_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        next_retry_at = _parse_next_retry_at(d.pop("next_retry_at", UNSET))

        _attempted_at = d.pop("attempted_at", UNSET)
        attempted_at: datetime.datetime | Unset
        if isinstance(_attempted_at, Unset):
            attempted_at = UNSET
        else:
            attempted_at = datetime.datetime.fromisoformat(_attempted_at)

        notifications_webhook_attempt = cls(
            id=id,
            delivery_id=delivery_id,
            event_type=event_type,
            attempt=attempt,
            outcome=outcome,
            status_code=status_code,
            duration_ms=duration_ms,
            error=error,
            next_retry_at=next_retry_at,
            attempted_at=attempted_at,
        )

        return notifications_webhook_attempt
