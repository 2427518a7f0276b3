from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar
from uuid import UUID

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="AuthUser")


@_attrs_define
class AuthUser:
    """
    Attributes:
        id (UUID | Unset):
        email (str | Unset):
        name (str | Unset):
        role (str | Unset):
        active (bool | Unset):
        email_verified (bool | Unset):
        created_at (datetime.datetime | Unset):
    """

    id: UUID | Unset = UNSET
    email: str | Unset = UNSET
    name: str | Unset = UNSET
    role: str | Unset = UNSET
    active: bool | Unset = UNSET
    email_verified: bool | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id: str | Unset = UNSET
        if not isinstance(self.id, Unset):
            id = str(self.id)

        email = self.email

        name = self.name

        role = self.role

        active = self.active

        email_verified = self.email_verified

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if id is not UNSET:
            field_dict["id"] = id
        if email is not UNSET:
            field_dict["email"] = email
        if name is not UNSET:
            field_dict["name"] = name
        if role is not UNSET:
            field_dict["role"] = role
        if active is not UNSET:
            field_dict["active"] = active
        if email_verified is not UNSET:
            field_dict["email_verified"] = email_verified
        if created_at is not UNSET:
            field_dict["created_at"] = created_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _id = d.pop("id", UNSET)
        id: UUID | Unset
        if isinstance(_id, Unset):
            id = UNSET
        else:
            id = UUID(_id)

        email = d.pop("email", UNSET)

        name = d.pop("name", UNSET)

        role = d.pop("role", UNSET)

        active = d.pop("active", UNSET)

        email_verified = d.pop("email_verified", UNSET)

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        auth_user = cls(
            id=id,
            email=email,
            name=name,
            role=role,
            active=active,
            email_verified=email_verified,
            created_at=created_at,
        )

        return auth_user
