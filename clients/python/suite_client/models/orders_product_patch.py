from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.orders_product_patch_currency import OrdersProductPatchCurrency
from ..types import UNSET, Unset

T = TypeVar("T", bound="OrdersProductPatch")


@_attrs_define
class OrdersProductPatch:
    """
    Attributes:
        name (str | Unset):
        unit_price_cents (int | Unset):  Example: 1250.
        currency (OrdersProductPatchCurrency | Unset):  Example: EUR.
        active (bool | Unset):
    """

    name: str | Unset = UNSET
    unit_price_cents: int | Unset = UNSET
    currency: OrdersProductPatchCurrency | Unset = UNSET
    active: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        unit_price_cents = self.unit_price_cents

        currency: str | Unset = UNSET
        if not isinstance(self.currency, Unset):
            currency = self.currency.value

        active = self.active

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if name is not UNSET:
            field_dict["name"] = name
        if unit_price_cents is not UNSET:
            field_dict["unit_price_cents"] = unit_price_cents
        if currency is not UNSET:
            field_dict["currency"] = currency
        if active is not UNSET:
            field_dict["active"] = active

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name", UNSET)

        unit_price_cents = d.pop("unit_price_cents", UNSET)

        _currency = d.pop("currency", UNSET)
        currency: OrdersProductPatchCurrency | Unset
        if isinstance(_currency, Unset):
            currency = UNSET
        else:
            currency = OrdersProductPatchCurrency(_currency)

        active = d.pop("active", UNSET)

        orders_product_patch = cls(
            name=name,
            unit_price_cents=unit_price_cents,
            currency=currency,
            active=active,
        )

        return orders_product_patch
