from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from attrs import define as _attrs_define

from ..models.orders_order_status import OrdersOrderStatus
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.orders_order_item import OrdersOrderItem


T = TypeVar("T", bound="OrdersOrder")


@_attrs_define
class OrdersOrder:
    """
    Attributes:
        id (UUID | Unset):
        user_id (str | Unset):
        status (OrdersOrderStatus | Unset):
        currency (str | Unset):
        total_cents (int | Unset):
        version (int | Unset): Grows with every change (see ETag).
        created_at (datetime.datetime | Unset):
        updated_at (datetime.datetime | Unset):
        items (list[OrdersOrderItem] | Unset):
    """

    id: UUID | Unset = UNSET
    user_id: str | Unset = UNSET
    status: OrdersOrderStatus | Unset = UNSET
    currency: str | Unset = UNSET
    total_cents: int | Unset = UNSET
    version: int | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    updated_at: datetime.datetime | Unset = UNSET
    items: list[OrdersOrderItem] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id: str | Unset = UNSET
        if not isinstance(self.id, Unset):
            id = str(self.id)

        user_id = self.user_id

        status: str | Unset = UNSET
        if not isinstance(self.status, Unset):
            status = self.status.value

        currency = self.currency

        total_cents = self.total_cents

        version = self.version

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        updated_at: str | Unset = UNSET
        if not isinstance(self.updated_at, Unset):
            updated_at = self.updated_at.isoformat()

        items: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.items, Unset):
            items = []
            for items_item_data in self.items:
                items_item = items_item_data.to_dict()
                items.append(items_item)

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if id is not UNSET:
            field_dict["id"] = id
        if user_id is not UNSET:
            field_dict["user_id"] = user_id
        if status is not UNSET:
            field_dict["status"] = status
        if currency is not UNSET:
            field_dict["currency"] = currency
        if total_cents is not UNSET:
            field_dict["total_cents"] = total_cents
        if version is not UNSET:
            field_dict["version"] = version
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if updated_at is not UNSET:
            field_dict["updated_at"] = updated_at
        if items is not UNSET:
            field_dict["items"] = items

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.orders_order_item import OrdersOrderItem  # noqa: PLC0415

        d = dict(src_dict)
        _id = d.pop("id", UNSET)
        id: UUID | Unset
        if isinstance(_id, Unset):
            id = UNSET
        else:
            id = UUID(_id)

        user_id = d.pop("user_id", UNSET)

        _status = d.pop("status", UNSET)
        status: OrdersOrderStatus | Unset
        if isinstance(_status, Unset):
            status = UNSET
        else:
            status = OrdersOrderStatus(_status)

        currency = d.pop("currency", UNSET)

        total_cents = d.pop("total_cents", UNSET)

        version = d.pop("version", UNSET)

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        _updated_at = d.pop("updated_at", UNSET)
        updated_at: datetime.datetime | Unset
        if isinstance(_updated_at, Unset):
            updated_at = UNSET
        else:
            updated_at = datetime.datetime.fromisoformat(_updated_at)

        _items = d.pop("items", UNSET)
        items: list[OrdersOrderItem] | Unset = UNSET
        if _items is not UNSET:
            items = []
            for items_item_data in _items:
                items_item = OrdersOrderItem.from_dict(items_item_data)

                items.append(items_item)

        orders_order = cls(
            id=id,
            user_id=user_id,
            status=status,
            currency=currency,
            total_cents=total_cents,
            version=version,
            created_at=created_at,
            updated_at=updated_at,
            items=items,
        )

        return orders_order
