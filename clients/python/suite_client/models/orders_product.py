from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="OrdersProduct")


@_attrs_define
class OrdersProduct:
    """
    Attributes:
        sku (str | Unset):
        name (str | Unset):
        unit_price_cents (int | Unset):
        currency (str | Unset):
        active (bool | Unset):
        created_at (datetime.datetime | Unset):
        updated_at (datetime.datetime | Unset):
    """

    sku: str | Unset = UNSET
    name: str | Unset = UNSET
    unit_price_cents: int | Unset = UNSET
    currency: str | Unset = UNSET
    active: bool | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    updated_at: datetime.datetime | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        sku = self.sku

        name = self.name

        unit_price_cents = self.unit_price_cents

        currency = self.currency

        active = self.active

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        updated_at: str | Unset = UNSET
        if not isinstance(self.updated_at, Unset):
            updated_at = self.updated_at.isoformat()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if sku is not UNSET:
            field_dict["sku"] = sku
        if name is not UNSET:
            field_dict["name"] = name
        if unit_price_cents is not UNSET:
            field_dict["unit_price_cents"] = unit_price_cents
        if currency is not UNSET:
            field_dict["currency"] = currency
        if active is not UNSET:
            field_dict["active"] = active
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if updated_at is not UNSET:
            field_dict["updated_at"] = updated_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        sku = d.pop("sku", UNSET)

        name = d.pop("name", UNSET)

        unit_price_cents = d.pop("unit_price_cents", UNSET)

        currency = d.pop("currency", UNSET)

        active = d.pop("active", UNSET)

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

        orders_product = cls(
            sku=sku,
            name=name,
            unit_price_cents=unit_price_cents,
            currency=currency,
            active=active,
            created_at=created_at,
            updated_at=updated_at,
        )

        return orders_product
