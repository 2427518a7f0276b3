from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="NotificationsWebhookRecover")


@_attrs_define
class NotificationsWebhookRecover:
    """
    Attributes:
        since (datetime.datetime): Events from this time on (ISO 8601 with an offset) that the endpoint did not get are
            sent again, once each. A time in the future matches nothing yet: 0 are queued. Example: 2026-12-02T09:00:00Z.
    """

    since: datetime.datetime

    def to_dict(self) -> dict[str, Any]:
        since = self.since.isoformat()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "since": since,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        since = datetime.datetime.fromisoformat(d.pop("since"))

        notifications_webhook_recover = cls(
            since=since,
        )

        return notifications_webhook_recover
