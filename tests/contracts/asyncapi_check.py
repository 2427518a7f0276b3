"""Validate a CloudEvent (as JSON) against the AsyncAPI document's message for its version."""

from __future__ import annotations

from typing import Any

import jsonschema


def validate_against_asyncapi(body: dict[str, Any], document: dict[str, Any]) -> None:
    """Raise (AssertionError, or jsonschema's ValidationError) unless `body` fits the document."""
    channel = document["channels"].get(body.get("type"))
    assert channel is not None, f"no channel for event type {body.get('type')!r}"
    messages = [
        document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
        for ref in channel["messages"].values()
    ]
    matching = [
        message
        for message in messages
        if message["payload"]["properties"]["dataschema"]["const"] == body.get("dataschema")
    ]
    assert matching, f"{body.get('type')} has no message for dataschema {body.get('dataschema')!r}"
    # The payload's $ref points into the document's components: validate within it.
    schema = {**matching[0]["payload"], "components": document["components"]}
    jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())
