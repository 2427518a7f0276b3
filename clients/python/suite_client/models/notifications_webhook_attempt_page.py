from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.notifications_webhook_attempt import NotificationsWebhookAttempt


T = TypeVar("T", bound="NotificationsWebhookAttemptPage")


@_attrs_define
class NotificationsWebhookAttemptPage:
    """
    Attributes:
        items (list[NotificationsWebhookAttempt] | Unset):
        next_cursor (Any | Unset):
    """

    items: list[NotificationsWebhookAttempt] | Unset = UNSET
    next_cursor: Any | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        items: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.items, Unset):
            items = []
            for items_item_data in self.items:
                items_item = items_item_data.to_dict()
                items.append(items_item)

        next_cursor = self.next_cursor

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if items is not UNSET:
            field_dict["items"] = items
        if next_cursor is not UNSET:
            field_dict["next_cursor"] = next_cursor

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.notifications_webhook_attempt import NotificationsWebhookAttempt  # noqa: PLC0415

        d = dict(src_dict)
        _items = d.pop("items", UNSET)
        items: list[NotificationsWebhookAttempt] | Unset = UNSET
        if _items is not UNSET:
            items = []
            for items_item_data in _items:
                items_item = NotificationsWebhookAttempt.from_dict(items_item_data)

                items.append(items_item)

        next_cursor = d.pop("next_cursor", UNSET)

        notifications_webhook_attempt_page = cls(
            items=items,
            next_cursor=next_cursor,
        )

        return notifications_webhook_attempt_page
