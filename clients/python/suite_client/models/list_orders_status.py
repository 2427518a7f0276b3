from enum import StrEnum


class ListOrdersStatus(StrEnum):
    CANCELLED = "cancelled"
    CONFIRMED = "confirmed"
    DELIVERED = "delivered"
    PENDING = "pending"
    SHIPPED = "shipped"

    def __str__(self) -> str:
        return str(self.value)
