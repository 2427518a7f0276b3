"""The AsyncAPI 3.0 document of the suite's events, generated from the contract catalogue.

`python -m shared.contracts.asyncapi` writes docs/asyncapi.yaml (`make asyncapi`);
`--check` only says whether the checked-in file is current. The gateway serves the same
document as JSON at /asyncapi.json.

What it describes (see shared/messaging.py for the topology itself): the topic exchange
`events` with one channel per routing key (= event type) that its producer sends to, and
per consuming service the quorum queue `<service>.events` it receives from, the retry
queues `<service>.events.retry.<n>` (each a TTL that leads back into the main queue) and
the dead-letter queue `<service>.events.dlq`. Every message is a CloudEvents 1.0 envelope
(structured JSON) whose `data` follows the JSON Schema of its contract.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.contracts.catalogue import CATALOGUE
from shared.contracts.registry import Catalogue, Contract
from shared.events import CONTENT_TYPE, MAX_ID_CHARS, MAX_SUBJECT_CHARS, SPECVERSION
from shared.messaging import (
    DEAD_LETTER_EXCHANGE,
    EXCHANGE,
    dlq_name,
    queue_name,
    retry_queue_name,
)

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
# The suite's defaults (EVENT_RETRY_DELAYS, EVENT_DELIVERY_LIMIT in shared.config); a
# deployment that changes them has other TTLs and limits than the document says.
DEFAULT_RETRY_DELAYS = (1.0, 5.0, 30.0)
DEFAULT_DELIVERY_LIMIT = 5
AMQP_BINDING_VERSION = "0.3.0"


def envelope_schema(contract: Contract[Any]) -> dict[str, Any]:
    """The JSON Schema of the whole CloudEvent carrying one contract's data."""
    return {
        "type": "object",
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "datacontenttype",
            "dataschema",
            "data",
        ],
        "properties": {
            "specversion": {"type": "string", "const": SPECVERSION},
            "id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
            "source": {"type": "string", "const": contract.producer},
            "type": {"type": "string", "const": contract.type},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string", "maxLength": MAX_SUBJECT_CHARS},
            "datacontenttype": {"type": "string", "const": "application/json"},
            "dataschema": {"type": "string", "const": contract.dataschema},
            "requestid": {"type": "string", "description": "The X-Request-ID that caused it."},
            "traceparent": {"type": "string", "description": "W3C trace context."},
            "data": {"$ref": f"#/components/schemas/{contract.key}"},
        },
    }


def _exchange() -> dict[str, Any]:
    return {"name": EXCHANGE, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}


def _queue_channel(
    name: str, description: str, messages: dict[str, Any], arguments: dict[str, Any]
) -> dict[str, Any]:
    return {
        "address": name,
        "description": description,
        "messages": messages,
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": name,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        "x-arguments": arguments,
    }


def _consumers(catalogue: Catalogue) -> dict[str, list[Contract[Any]]]:
    consumers: dict[str, list[Contract[Any]]] = {}
    for contract in catalogue.contracts:
        for consumer in contract.consumers:
            consumers.setdefault(consumer, []).append(contract)
    return dict(sorted(consumers.items()))


def document(
    catalogue: Catalogue = CATALOGUE,
    *,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `catalogue`."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    for contract in catalogue.contracts:
        schemas[contract.key] = contract.json_schema()
        messages[contract.key] = {
            "name": contract.type,
            "title": f"{contract.type} (version {contract.version})",
            "summary": contract.summary,
            "contentType": CONTENT_TYPE,
            "payload": envelope_schema(contract),
            "x-producer": contract.producer,
            "x-consumers": list(contract.consumers),
        }
        channel = channels.setdefault(
            contract.type,
            {
                "address": contract.type,
                "description": f"Routing key `{contract.type}` on the `{EXCHANGE}` exchange.",
                "messages": {},
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": _exchange(),
                        "bindingVersion": AMQP_BINDING_VERSION,
                    }
                },
            },
        )
        channel["messages"][contract.key] = {"$ref": f"#/components/messages/{contract.key}"}
        producer = contract.producer.strip("/")
        operations[f"{producer}.send.{contract.key}"] = {
            "action": "send",
            "summary": f"{producer} publishes {contract.type} through its outbox.",
            "channel": {"$ref": f"#/channels/{contract.type}"},
            "messages": [{"$ref": f"#/channels/{contract.type}/messages/{contract.key}"}],
            "bindings": {
                "amqp": {
                    "deliveryMode": 2,
                    "mandatory": True,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }

    for consumer, contracts in _consumers(catalogue).items():
        refs = {c.key: {"$ref": f"#/components/messages/{c.key}"} for c in contracts}
        main, dlq = queue_name(consumer), dlq_name(consumer)
        types = ", ".join(f"`{t}`" for t in dict.fromkeys(c.type for c in contracts))
        channels[main] = _queue_channel(
            main,
            f"{consumer}'s quorum queue, bound to `{EXCHANGE}` with {types}.",
            refs,
            {
                "x-queue-type": "quorum",
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                "x-dead-letter-routing-key": dlq,
            },
        )
        for tier, delay in enumerate(retry_delays, start=1):
            retry = retry_queue_name(consumer, tier)
            channels[retry] = _queue_channel(
                retry,
                f"Retry {tier}: a failed event waits {delay:g} s here, then returns to {main}.",
                dict(refs),
                {
                    "x-queue-type": "classic",
                    "x-message-ttl": max(1, round(delay * 1000)),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": main,
                },
            )
        channels[dlq] = _queue_channel(
            dlq,
            f"{consumer}'s dead letters: refused at once (malformed, invalid data, wrong "
            "source) or out of retries; inspect and replay with `dlq`.",
            dict(refs),
            {"x-queue-type": "classic"},
        )
        operations[f"{consumer}.receive"] = {
            "action": "receive",
            "summary": f"{consumer} consumes its queue (manual ack after its inbox commit).",
            "channel": {"$ref": f"#/channels/{main}"},
            "messages": [{"$ref": f"#/channels/{main}/messages/{key}"} for key in refs],
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Flask microservices suite events",
            "version": "1.0.0",
            "description": (
                "CloudEvents 1.0 (structured JSON) on the durable topic exchange "
                f"`{EXCHANGE}`, routing key = event type. Generated from shared/contracts; "
                "`dataschema` names each message's schema and version."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "The broker of `make run` and `make test`.",
            },
            "compose": {
                "host": "rabbitmq:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "The broker of docker-compose.yml.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


@functools.cache
def document_json() -> bytes:
    """The document as JSON bytes, built once per process (what /asyncapi.json serves)."""
    return json.dumps(document(), separators=(",", ":")).encode()


def render_yaml(doc: dict[str, Any]) -> str:
    """The document as the YAML checked in under docs/."""
    import yaml  # a dev dependency: only `make asyncapi` and the tests write YAML

    header = "# Generated by `make asyncapi` from shared/contracts; do not edit by hand.\n"
    body: str = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def main(argv: Sequence[str] | None = None) -> int:
    """Write docs/asyncapi.yaml, or (--check) fail when it is not what the catalogue says."""
    parser = argparse.ArgumentParser(prog="python -m shared.contracts.asyncapi")
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument("--output", type=Path, default=DOCUMENT_PATH)
    args = parser.parse_args(argv)
    text = render_yaml(document())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is out of date: run `make asyncapi`\n")
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
