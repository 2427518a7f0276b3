from enum import StrEnum


class NotificationsSubjectType(StrEnum):
    ORDER = "order"
    USER = "user"
    WEBHOOK = "webhook"

    def __str__(self) -> str:
        return str(self.value)
