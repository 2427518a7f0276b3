from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="OrdersOrderItem")


@_attrs_define
class OrdersOrderItem:
    """
    Attributes:
        sku (str | Unset):
        quantity (int | Unset):
        unit_price_cents (int | Unset):
    """

    sku: str | Unset = UNSET
    quantity: int | Unset = UNSET
    unit_price_cents: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        sku = self.sku

        quantity = self.quantity

        unit_price_cents = self.unit_price_cents

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if sku is not UNSET:
            field_dict["sku"] = sku
        if quantity is not UNSET:
            field_dict["quantity"] = quantity
        if unit_price_cents is not UNSET:
            field_dict["unit_price_cents"] = unit_price_cents

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        sku = d.pop("sku", UNSET)

        quantity = d.pop("quantity", UNSET)

        unit_price_cents = d.pop("unit_price_cents", UNSET)

        orders_order_item = cls(
            sku=sku,
            quantity=quantity,
            unit_price_cents=unit_price_cents,
        )

        return orders_order_item
