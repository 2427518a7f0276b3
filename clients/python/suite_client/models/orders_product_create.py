from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.orders_product_create_currency import OrdersProductCreateCurrency
from ..types import UNSET, Unset

T = TypeVar("T", bound="OrdersProductCreate")


@_attrs_define
class OrdersProductCreate:
    """
    Attributes:
        sku (str):  Example: BOOK-1.
        name (str):
        unit_price_cents (int):  Example: 1250.
        currency (OrdersProductCreateCurrency):  Example: EUR.
        active (bool | Unset):  Default: True.
    """

    sku: str
    name: str
    unit_price_cents: int
    currency: OrdersProductCreateCurrency
    active: bool | Unset = True

    def to_dict(self) -> dict[str, Any]:
        sku = self.sku

        name = self.name

        unit_price_cents = self.unit_price_cents

        currency = self.currency.value

        active = self.active

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "sku": sku,
                "name": name,
                "unit_price_cents": unit_price_cents,
                "currency": currency,
            }
        )
        if active is not UNSET:
            field_dict["active"] = active

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        sku = d.pop("sku")

        name = d.pop("name")

        unit_price_cents = d.pop("unit_price_cents")

        currency = OrdersProductCreateCurrency(d.pop("currency"))

        active = d.pop("active", UNSET)

        orders_product_create = cls(
            sku=sku,
            name=name,
            unit_price_cents=unit_price_cents,
            currency=currency,
            active=active,
        )

        return orders_product_create
