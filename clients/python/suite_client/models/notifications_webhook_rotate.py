from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="NotificationsWebhookRotate")


@_attrs_define
class NotificationsWebhookRotate:
    """
    Attributes:
        grace_period_seconds (int | Unset): Seconds during which webhooks carry signatures by both secrets (0: the old
            secret stops now). At most 7 days. Default: 86400. Example: 86400.
    """

    grace_period_seconds: int | Unset = 86400

    def to_dict(self) -> dict[str, Any]:
        grace_period_seconds = self.grace_period_seconds

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if grace_period_seconds is not UNSET:
            field_dict["grace_period_seconds"] = grace_period_seconds

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        grace_period_seconds = d.pop("grace_period_seconds", UNSET)

        notifications_webhook_rotate = cls(
            grace_period_seconds=grace_period_seconds,
        )

        return notifications_webhook_rotate
