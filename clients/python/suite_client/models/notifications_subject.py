from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.notifications_subject_type import NotificationsSubjectType
from ..types import UNSET, Unset

T = TypeVar("T", bound="NotificationsSubject")


@_attrs_define
class NotificationsSubject:
    """
    Attributes:
        type_ (NotificationsSubjectType | Unset):  Example: order.
        id (str | Unset): The full id. Example: 0b6f3c2e-8d7a-4f51-9c0e-2a4b6d8e1f30.
        path (str | Unset): The API path that reads it with one GET (through the gateway). Example:
            /api/v1/orders/0b6f3c2e-8d7a-4f51-9c0e-2a4b6d8e1f30.
    """

    type_: NotificationsSubjectType | Unset = UNSET
    id: str | Unset = UNSET
    path: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        type_: str | Unset = UNSET
        if not isinstance(self.type_, Unset):
            type_ = self.type_.value

        id = self.id

        path = self.path

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if type_ is not UNSET:
            field_dict["type"] = type_
        if id is not UNSET:
            field_dict["id"] = id
        if path is not UNSET:
            field_dict["path"] = path

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _type_ = d.pop("type", UNSET)
        type_: NotificationsSubjectType | Unset
        if isinstance(_type_, Unset):
            type_ = UNSET
        else:
            type_ = NotificationsSubjectType(_type_)

        id = d.pop("id", UNSET)

        path = d.pop("path", UNSET)

        notifications_subject = cls(
            type_=type_,
            id=id,
            path=path,
        )

        return notifications_subject
