from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.auth_jwk import AuthJWK


T = TypeVar("T", bound="AuthJWKS")


@_attrs_define
class AuthJWKS:
    """
    Attributes:
        keys (list[AuthJWK] | Unset):
    """

    keys: list[AuthJWK] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        keys: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.keys, Unset):
            keys = []
            for keys_item_data in self.keys:
                keys_item = keys_item_data.to_dict()
                keys.append(keys_item)

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if keys is not UNSET:
            field_dict["keys"] = keys

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.auth_jwk import AuthJWK  # noqa: PLC0415

        d = dict(src_dict)
        _keys = d.pop("keys", UNSET)
        keys: list[AuthJWK] | Unset = UNSET
        if _keys is not UNSET:
            keys = []
            for keys_item_data in _keys:
                keys_item = AuthJWK.from_dict(keys_item_data)

                keys.append(keys_item)

        auth_jwks = cls(
            keys=keys,
        )

        return auth_jwks
