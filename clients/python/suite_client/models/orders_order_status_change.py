from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.orders_order_status_change_status import OrdersOrderStatusChangeStatus

T = TypeVar("T", bound="OrdersOrderStatusChange")


@_attrs_define
class OrdersOrderStatusChange:
    """
    Attributes:
        status (OrdersOrderStatusChangeStatus):
    """

    status: OrdersOrderStatusChangeStatus

    def to_dict(self) -> dict[str, Any]:
        status = self.status.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "status": status,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        status = OrdersOrderStatusChangeStatus(d.pop("status"))

        orders_order_status_change = cls(
            status=status,
        )

        return orders_order_status_change
