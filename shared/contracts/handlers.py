"""A consumer's event handlers, each registered beside its code by the contract it reads.

    HANDLERS = Handlers("orders")

    @HANDLERS.on(UserDeactivatedV1)
    def on_user_deactivated(session, event, data: UserDeactivatedV1) -> None: ...

`HANDLERS` is then the mapping the inbox and the consumer's bindings take (event type ->
handler), so a new event type is one decorated handler, not a handler and a table entry.
Registering checks the catalogue at import time: the consumer must be declared for that
version of the type (it would never be handed any other), and a type has one handler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from shared.contracts.catalogue import CATALOGUE
from shared.contracts.registry import Catalogue
from shared.events import Event

Handler = Callable[[Session, Event, Any], None]
H = TypeVar("H", bound=Handler)


class Handlers(Mapping[str, Handler]):
    """One consumer's handlers by event type, filled by the `on(...)` decorator."""

    def __init__(self, consumer: str, catalogue: Catalogue = CATALOGUE) -> None:
        self.consumer = consumer
        self._catalogue = catalogue
        self._by_type: dict[str, Handler] = {}

    def on(self, *data_classes: type[Any]) -> Callable[[H], H]:
        """Register the decorated handler for the event types whose data are `data_classes`."""
        contracts = [self._catalogue.contract_for_class(cls) for cls in data_classes]
        for contract in contracts:
            if self.consumer not in contract.consumers:
                raise ValueError(
                    f"{self.consumer} is not declared as a consumer of {contract.key} "
                    "(add it to the contract's consumers in shared/contracts/catalogue.py)"
                )
            if contract.type in self._by_type:
                raise ValueError(f"{self.consumer} has two handlers for {contract.type}")

        def register(handler: H) -> H:
            for contract in contracts:
                self._by_type[contract.type] = handler
            return handler

        return register

    def __getitem__(self, event_type: str) -> Handler:
        return self._by_type[event_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_type)

    def __len__(self) -> int:
        return len(self._by_type)
