"""How a contract is held, built into an Event, and parsed back from one.

A contract is one (type, version): a frozen dataclass for its `data`, the source that may
produce it and the services that consume it. Validation is pydantic's, compiled once per
contract when the catalogue is imported, so a consumer pays a few microseconds per event.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from shared.events import Event, InvalidEvent, new_event

D = TypeVar("D")

# Names the schema of a type's data and its version; also the `$id` of that schema in the
# AsyncAPI document (docs/asyncapi.yaml, components/schemas/<type>.v<version>).
DATASCHEMA_PREFIX = "urn:flask-microservices-suite:events:"
MAX_REASON_CHARS = 500


def dataschema(event_type: str, version: int) -> str:
    """The CloudEvents `dataschema` of one type and version."""
    return f"{DATASCHEMA_PREFIX}{event_type}:{version}"


@dataclass(frozen=True)
class Contract(Generic[D]):
    """One event type at one version: its data class, producer and consumers."""

    type: str
    version: int
    data: builtins.type[D]
    producer: str  # the CloudEvents `source` allowed to publish it
    consumers: tuple[str, ...]
    subject: Callable[[D], str]  # what the event is about (the user's or order's id)
    summary: str
    adapter: TypeAdapter[D] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built once: pydantic compiles the validator and serializer here, not per event.
        object.__setattr__(self, "adapter", TypeAdapter(self.data))

    @property
    def dataschema(self) -> str:
        """This contract's CloudEvents `dataschema`."""
        return dataschema(self.type, self.version)

    @property
    def producer_service(self) -> str:
        """The service that publishes it (its source without the slash): whose broker user
        a consumer expects on the message (shared.messaging.producers)."""
        return self.producer.lstrip("/")

    @property
    def key(self) -> str:
        """`<type>.v<version>`: the name of its schema and message in the AsyncAPI document."""
        return f"{self.type}.v{self.version}"

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the data, self-contained (nested definitions inlined)."""
        schema = self.adapter.json_schema(by_alias=True)
        definitions = schema.pop("$defs", {})
        inlined: dict[str, Any] = _inline(schema, definitions)
        return {"$id": self.dataschema, **inlined}

    def dump(self, data: D) -> dict[str, Any]:
        """The data as JSON-ready values under their wire names (optional Nones left out)."""
        dumped: dict[str, Any] = self.adapter.dump_python(
            data, mode="json", by_alias=True, exclude_none=True
        )
        return dumped

    def load(self, raw: Mapping[str, Any]) -> D:
        """The typed data; InvalidEvent naming the fields that are missing, extra or wrong."""
        try:
            return self.adapter.validate_python(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'data'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            reason = f"{self.key} data is invalid: {problems}"
            raise InvalidEvent(reason[:MAX_REASON_CHARS]) from None


def _inline(node: Any, definitions: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


class Catalogue:
    """Every contract, looked up by data class (to build) or by dataschema (to parse)."""

    def __init__(self, contracts: Iterable[Contract[Any]]) -> None:
        self.contracts: tuple[Contract[Any], ...] = tuple(contracts)
        self._by_class: dict[type[Any], Contract[Any]] = {}
        self._by_schema: dict[str, Contract[Any]] = {}
        self._types: dict[str, list[Contract[Any]]] = {}
        for contract in self.contracts:
            if contract.data in self._by_class or contract.dataschema in self._by_schema:
                raise ValueError(f"{contract.key} is defined twice")
            self._by_class[contract.data] = contract
            self._by_schema[contract.dataschema] = contract
            self._types.setdefault(contract.type, []).append(contract)

    @property
    def types(self) -> tuple[str, ...]:
        """Every event type, in catalogue order."""
        return tuple(self._types)

    def versions(self, event_type: str) -> tuple[Contract[Any], ...]:
        """The published versions of one type, oldest first."""
        return tuple(sorted(self._types.get(event_type, ()), key=lambda c: c.version))

    def contract_for(self, data: object) -> Contract[Any]:
        """The contract whose data class `data` is an instance of."""
        return self.contract_for_class(type(data))

    def contract_for_class(self, data_class: type[Any]) -> Contract[Any]:
        """The contract whose data class is `data_class`."""
        try:
            return self._by_class[data_class]
        except KeyError:
            raise TypeError(f"{data_class.__name__} is not an event in the catalogue") from None

    def producer_services(self) -> dict[str, str]:
        """The producing service of every event type."""
        return {kind: versions[0].producer_service for kind, versions in self._types.items()}

    def consumed_by(self, consumer: str) -> tuple[str, ...]:
        """The types `consumer` is declared to consume."""
        return tuple(t for t, cs in self._types.items() if any(consumer in c.consumers for c in cs))

    def build(self, data: object, *, subject: str | None = None) -> Event:
        """The event carrying `data`: its type, producer source, dataschema and subject."""
        contract = self.contract_for(data)
        return new_event(
            contract.type,
            contract.producer,
            contract.dump(data),
            subject=subject if subject is not None else contract.subject(data),
            dataschema=contract.dataschema,
        )

    def contract_of(self, event: Event) -> Contract[Any]:
        """The contract `event` claims; InvalidEvent for an unknown type or version, or source."""
        known = self._types.get(event.type)
        if known is None:
            raise InvalidEvent(f"unknown event type {event.type!r}")
        if event.dataschema is None:
            raise InvalidEvent(f"{event.type} without a dataschema (which version is it?)")
        contract = self._by_schema.get(event.dataschema)
        if contract is None or contract.type != event.type:
            versions = ", ".join(str(c.version) for c in known)
            raise InvalidEvent(
                f"unknown dataschema {event.dataschema[:200]!r} for {event.type} "
                f"(known versions: {versions})"
            )
        if event.source != contract.producer:
            # Trust by source: only the owner of a user or an order speaks for it.
            raise InvalidEvent(
                f"{event.type} must come from {contract.producer}, not {event.source!r}"
            )
        return contract

    def parse(self, event: Event) -> Any:
        """The event's typed data, or InvalidEvent: unknown type or version, bad source or data."""
        return self.contract_of(event).load(event.data)

    def parse_for(self, event: Event, consumer: str) -> Any | None:
        """parse(), or None when `consumer` reads another version of this type (ack, skip)."""
        contract = self.contract_of(event)
        data = contract.load(event.data)
        # While a producer publishes two versions side by side, each consumer acts on the
        # one it is declared for: acting on both would apply the same change twice.
        return data if consumer in contract.consumers else None
