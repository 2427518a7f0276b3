from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="AuthRegistration")


@_attrs_define
class AuthRegistration:
    """
    Attributes:
        email (str | Unset):
        detail (str | Unset):
    """

    email: str | Unset = UNSET
    detail: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        email = self.email

        detail = self.detail

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if email is not UNSET:
            field_dict["email"] = email
        if detail is not UNSET:
            field_dict["detail"] = detail

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        email = d.pop("email", UNSET)

        detail = d.pop("detail", UNSET)

        auth_registration = cls(
            email=email,
            detail=detail,
        )

        return auth_registration
