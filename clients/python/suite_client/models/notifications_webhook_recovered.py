from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="NotificationsWebhookRecovered")


@_attrs_define
class NotificationsWebhookRecovered:
    """
    Attributes:
        queued (int | Unset):  Example: 12.
    """

    queued: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        queued = self.queued

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if queued is not UNSET:
            field_dict["queued"] = queued

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        queued = d.pop("queued", UNSET)

        notifications_webhook_recovered = cls(
            queued=queued,
        )

        return notifications_webhook_recovered
