from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.notifications_problem_errors import NotificationsProblemErrors


T = TypeVar("T", bound="NotificationsProblem")


@_attrs_define
class NotificationsProblem:
    """
    Attributes:
        type_ (str):  Example: https://flask-suite.dev/problems/not-found.
        title (str):  Example: Not Found.
        status (int):  Example: 404.
        detail (str):  Example: No such order..
        request_id (None | str | Unset):  Example: 3f1c7a9e2b8d4e6f9a0b1c2d3e4f5a6b.
        errors (NotificationsProblemErrors | Unset): Per-field messages of a 422. Example: {'email': ['Not a valid email
            address.']}.
    """

    type_: str
    title: str
    status: int
    detail: str
    request_id: None | str | Unset = UNSET
    errors: NotificationsProblemErrors | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        type_ = self.type_

        title = self.title

        status = self.status

        detail = self.detail

        request_id: None | str | Unset
        if isinstance(self.request_id, Unset):
            request_id = UNSET
        else:
            request_id = self.request_id

        errors: dict[str, Any] | Unset = UNSET
        if not isinstance(self.errors, Unset):
            errors = self.errors.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "type": type_,
                "title": title,
                "status": status,
                "detail": detail,
            }
        )
        if request_id is not UNSET:
            field_dict["request_id"] = request_id
        if errors is not UNSET:
            field_dict["errors"] = errors

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.notifications_problem_errors import NotificationsProblemErrors  # noqa: PLC0415

        d = dict(src_dict)
        type_ = d.pop("type")

        title = d.pop("title")

        status = d.pop("status")

        detail = d.pop("detail")

        def _parse_request_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        request_id = _parse_request_id(d.pop("request_id", UNSET))

        _errors = d.pop("errors", UNSET)
        errors: NotificationsProblemErrors | Unset
        if isinstance(_errors, Unset):
            errors = UNSET
        else:
            errors = NotificationsProblemErrors.from_dict(_errors)

        notifications_problem = cls(
            type_=type_,
            title=title,
            status=status,
            detail=detail,
            request_id=request_id,
            errors=errors,
        )

        return notifications_problem
