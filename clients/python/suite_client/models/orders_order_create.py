from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.orders_order_create_currency import OrdersOrderCreateCurrency

if TYPE_CHECKING:
    from ..models.orders_order_item_create import OrdersOrderItemCreate


T = TypeVar("T", bound="OrdersOrderCreate")


@_attrs_define
class OrdersOrderCreate:
    """
    Attributes:
        currency (OrdersOrderCreateCurrency):  Example: EUR.
        items (list[OrdersOrderItemCreate]):
    """

    currency: OrdersOrderCreateCurrency
    items: list[OrdersOrderItemCreate]

    def to_dict(self) -> dict[str, Any]:
        currency = self.currency.value

        items = []
        for items_item_data in self.items:
            items_item = items_item_data.to_dict()
            items.append(items_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "currency": currency,
                "items": items,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.orders_order_item_create import OrdersOrderItemCreate  # noqa: PLC0415

        d = dict(src_dict)
        currency = OrdersOrderCreateCurrency(d.pop("currency"))

        items = []
        _items = d.pop("items")
        for items_item_data in _items:
            items_item = OrdersOrderItemCreate.from_dict(items_item_data)

            items.append(items_item)

        orders_order_create = cls(
            currency=currency,
            items=items,
        )

        return orders_order_create
