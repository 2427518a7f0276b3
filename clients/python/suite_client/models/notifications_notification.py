from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.notifications_delivery import NotificationsDelivery
    from ..models.notifications_subject import NotificationsSubject


T = TypeVar("T", bound="NotificationsNotification")


@_attrs_define
class NotificationsNotification:
    """
    Attributes:
        id (UUID | Unset):
        event_type (str | Unset):
        title (str | Unset):
        body (str | Unset):
        read (Any | Unset):
        read_at (datetime.datetime | None | Unset):
        created_at (datetime.datetime | Unset):
        deliveries (list[NotificationsDelivery] | Unset):
        subject (None | NotificationsSubject | Unset): What it is about; null only for notifications made before.
    """

    id: UUID | Unset = UNSET
    event_type: str | Unset = UNSET
    title: str | Unset = UNSET
    body: str | Unset = UNSET
    read: Any | Unset = UNSET
    read_at: datetime.datetime | None | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    deliveries: list[NotificationsDelivery] | Unset = UNSET
    subject: None | NotificationsSubject | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.notifications_subject import NotificationsSubject  # noqa: PLC0415

        id: str | Unset = UNSET
        if not isinstance(self.id, Unset):
            id = str(self.id)

        event_type = self.event_type

        title = self.title

        body = self.body

        read = self.read

        read_at: None | str | Unset
        if isinstance(self.read_at, Unset):
            read_at = UNSET
        elif isinstance(self.read_at, datetime.datetime):
            read_at = self.read_at.isoformat()
        else:
            read_at = self.read_at

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        deliveries: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.deliveries, Unset):
            deliveries = []
            for deliveries_item_data in self.deliveries:
                deliveries_item = deliveries_item_data.to_dict()
                deliveries.append(deliveries_item)

        subject: dict[str, Any] | None | Unset
        if isinstance(self.subject, Unset):
            subject = UNSET
        elif isinstance(self.subject, NotificationsSubject):
            subject = self.subject.to_dict()
        else:
            subject = self.subject

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if id is not UNSET:
            field_dict["id"] = id
        if event_type is not UNSET:
            field_dict["event_type"] = event_type
        if title is not UNSET:
            field_dict["title"] = title
        if body is not UNSET:
            field_dict["body"] = body
        if read is not UNSET:
            field_dict["read"] = read
        if read_at is not UNSET:
            field_dict["read_at"] = read_at
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if deliveries is not UNSET:
            field_dict["deliveries"] = deliveries
        if subject is not UNSET:
            field_dict["subject"] = subject

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.notifications_delivery import NotificationsDelivery  # noqa: PLC0415
        from ..models.notifications_subject import NotificationsSubject  # noqa: PLC0415

        d = dict(src_dict)
        _id = d.pop("id", UNSET)
        id: UUID | Unset
        if isinstance(_id, Unset):
            id = UNSET
        else:
            id = UUID(_id)

        event_type = d.pop("event_type", UNSET)

        title = d.pop("title", UNSET)

        body = d.pop("body", UNSET)

        read = d.pop("read", UNSET)

        def _parse_read_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                read_at_type_0 = datetime.datetime.fromisoformat(data)

                return read_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        read_at = _parse_read_at(d.pop("read_at", UNSET))

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        _deliveries = d.pop("deliveries", UNSET)
        deliveries: list[NotificationsDelivery] | Unset = UNSET
        if _deliveries is not UNSET:
            deliveries = []
            for deliveries_item_data in _deliveries:
                deliveries_item = NotificationsDelivery.from_dict(deliveries_item_data)

                deliveries.append(deliveries_item)

        def _parse_subject(data: object) -> None | NotificationsSubject | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                subject_type_0 = NotificationsSubject.from_dict(data)

                return subject_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | NotificationsSubject | Unset, data)

        subject = _parse_subject(d.pop("subject", UNSET))

        notifications_notification = cls(
            id=id,
            event_type=event_type,
            title=title,
            body=body,
            read=read,
            read_at=read_at,
            created_at=created_at,
            deliveries=deliveries,
            subject=subject,
        )

        return notifications_notification
