"""A consumer's event handlers, each registered beside its code by the contract it reads.

    HANDLERS = Handlers("orders")

    @HANDLERS.on(UserDeactivatedV1)
    def on_user_deactivated(session, event, data: UserDeactivatedV1) -> None: ...

    HANDLERS.use_case(UserReactivatedV1, customers.reactivate_customer)

A type may also get a batch form, registered alongside its per-event handler:

    @HANDLERS.on_batch(OrderCreatedV1)
    def on_orders(session, items: Sequence[tuple[Event, OrderCreatedV1]]) -> None: ...

The consumer's batch handler (`shared.inbox.inbox_batch_handler`) hands each run of
consecutive events with the same batch form to it in one call, so their rows can be read
and written per batch rather than per event; the one-by-one replay of a failed batch
(`inbox_handler`) always uses the per-event form, which must have the same effect.

`use_case` registers a use case whose keyword arguments are the data's fields (and
`session`), with no handler function written around it. `HANDLERS` is then the mapping the
inbox and the consumer's bindings take (event type -> handler), so a new event type is one
registration, not a handler and a table entry.

Registering checks at import time: the consumer must be declared in the catalogue for that
version of the type (it would never be handed any other), a type has one handler, and a
use case must take exactly the data's fields (an optional field added to the contract
then fails at start-up, not at the first event: give that use case a handler function).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from shared.contracts.catalogue import CATALOGUE
from shared.contracts.registry import Catalogue
from shared.events import Event

Handler = Callable[[Session, Event, Any], None]
BatchHandler = Callable[[Session, Sequence[tuple[Event, Any]]], None]
H = TypeVar("H", bound=Handler)
B = TypeVar("B", bound=BatchHandler)


class Handlers(Mapping[str, Handler]):
    """One consumer's handlers by event type, filled by the `on(...)` decorator."""

    def __init__(self, consumer: str, catalogue: Catalogue = CATALOGUE) -> None:
        self.consumer = consumer
        self._catalogue = catalogue
        self._by_type: dict[str, Handler] = {}
        self._batch_by_type: dict[str, BatchHandler] = {}

    @property
    def batches(self) -> Mapping[str, BatchHandler]:
        """The batch forms by event type (a type without one is handled event by event)."""
        return self._batch_by_type

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

    def on_batch(self, *data_classes: type[Any]) -> Callable[[B], B]:
        """Register the decorated batch form of the handler of these types' events."""
        contracts = [self._catalogue.contract_for_class(cls) for cls in data_classes]
        for contract in contracts:
            if contract.type not in self._by_type:
                raise ValueError(
                    f"{self.consumer}: register the per-event handler of {contract.type} "
                    "before its batch form (a failed batch is replayed event by event)"
                )
            if contract.type in self._batch_by_type:
                raise ValueError(f"{self.consumer} has two batch handlers for {contract.type}")

        def register(handler: B) -> B:
            for contract in contracts:
                self._batch_by_type[contract.type] = handler
            return handler

        return register

    def use_case(self, data_class: type[Any], use_case: Callable[..., object]) -> None:
        """Register `use_case(session=..., **the data's fields)` for the type of `data_class`."""
        names = [f.name for f in dataclasses.fields(data_class)]
        parameters = inspect.signature(use_case).parameters
        takes = {
            name
            for name, p in parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name != "session"
        }
        required = {name for name in takes if parameters[name].default is inspect.Parameter.empty}
        if "session" not in parameters or not required <= set(names) <= takes:
            raise ValueError(
                f"{use_case.__name__} does not take exactly the fields of "
                f"{data_class.__name__} ({', '.join(names)}) and `session`: "
                "register a handler function for it instead"
            )

        def handle(session: Session, _event: Event, data: Any) -> None:
            use_case(session=session, **{name: getattr(data, name) for name in names})

        handle.__name__ = handle.__qualname__ = f"handle_with_{use_case.__name__}"
        self.on(data_class)(handle)

    def __getitem__(self, event_type: str) -> Handler:
        return self._by_type[event_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_type)

    def __len__(self) -> int:
        return len(self._by_type)
