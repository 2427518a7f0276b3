from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.auth_user_patch_role import AuthUserPatchRole
from ..types import UNSET, Unset

T = TypeVar("T", bound="AuthUserPatch")


@_attrs_define
class AuthUserPatch:
    """
    Attributes:
        role (AuthUserPatchRole | Unset):
        active (bool | Unset):
    """

    role: AuthUserPatchRole | Unset = UNSET
    active: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        role: str | Unset = UNSET
        if not isinstance(self.role, Unset):
            role = self.role.value

        active = self.active

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if role is not UNSET:
            field_dict["role"] = role
        if active is not UNSET:
            field_dict["active"] = active

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _role = d.pop("role", UNSET)
        role: AuthUserPatchRole | Unset
        if isinstance(_role, Unset):
            role = UNSET
        else:
            role = AuthUserPatchRole(_role)

        active = d.pop("active", UNSET)

        auth_user_patch = cls(
            role=role,
            active=active,
        )

        return auth_user_patch
