from enum import StrEnum


class NotificationsWebhookCreateEventTypesItem(StrEnum):
    ORDER_CREATED = "order.created"
    ORDER_STATUS_CHANGED = "order.status_changed"
    USER_REGISTERED = "user.registered"

    def __str__(self) -> str:
        return str(self.value)
