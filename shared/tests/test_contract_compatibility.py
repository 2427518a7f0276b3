"""The compatibility gate: published versions keep their shape; only optional fields join."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ConfigDict

from shared import contracts
from shared.contracts.catalogue import Email, Id, Name, Version
from shared.contracts.compatibility import breaking_changes, gate, load_snapshots, record

PUBLISHED = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "user_id": {"type": "string", "maxLength": 64, "title": "User Id"},
        "email": {"type": "string", "maxLength": 320},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
                "required": ["sku", "quantity"],
            },
        },
    },
    "required": ["user_id", "email", "items"],
}


def changed(edit) -> dict[str, Any]:
    schema = copy.deepcopy(PUBLISHED)
    edit(schema)
    return schema


def test_every_published_version_matches_its_snapshot_or_only_gained_optional_fields():
    assert gate(contracts.CATALOGUE, load_snapshots()) == []


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda s: s["properties"].pop("email"), "data.email was removed (or renamed)"),
        (
            lambda s: s["properties"].update(mail=s["properties"].pop("email")),
            "data.email was removed (or renamed)",
        ),
        (
            lambda s: s["properties"]["user_id"].update(type="integer"),
            "data.user_id: type changed from 'string' to 'integer'",
        ),
        (
            lambda s: s["properties"]["email"].update(maxLength=100),
            "data.email: maxLength changed from 320 to 100",
        ),
        (
            lambda s: (
                s["properties"].update(role={"type": "string"}),
                s["required"].append("role"),
            ),
            "data.role is a new required field",
        ),
        (
            lambda s: s["properties"]["items"]["items"]["properties"].pop("quantity"),
            "data.items[].quantity was removed (or renamed)",
        ),
        (
            lambda s: s.update(additionalProperties=True),
            "data: additionalProperties changed from False to True",
        ),
    ],
    ids=["removed", "renamed", "retyped", "limit-changed", "new-required", "nested", "opened"],
)
def test_a_change_that_would_break_a_consumer_fails_the_gate(edit, problem):
    assert problem in breaking_changes(PUBLISHED, changed(edit))


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["properties"].update(nickname={"type": "string"}),
        lambda s: s["properties"]["user_id"].update(title="Who", description="The user's id."),
    ],
    ids=["optional-field-added", "reworded"],
)
def test_an_added_optional_field_or_new_wording_passes_the_gate(edit):
    assert breaking_changes(PUBLISHED, changed(edit)) == []


@dataclass(frozen=True, kw_only=True)
class UserRegisteredWithoutEmail:
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")
    user_id: Id
    name: Name
    version: Version


@dataclass(frozen=True, kw_only=True)
class UserRegisteredWithLocale:
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")
    user_id: Id
    email: Email
    name: Name
    version: Version
    locale: str | None = None


def catalogue_with(data: type) -> contracts.Catalogue:
    """The real catalogue with user.registered v1 redefined by `data`."""
    original = contracts.CATALOGUE.versions("user.registered")[0]
    return contracts.Catalogue(
        contracts.Contract(
            type=c.type,
            version=c.version,
            data=data,
            producer=c.producer,
            consumers=c.consumers,
            subject=c.subject,
            summary=c.summary,
        )
        if c is original
        else c
        for c in contracts.CATALOGUE.contracts
    )


def test_removing_a_field_from_a_published_version_fails_the_gate():
    problems = gate(catalogue_with(UserRegisteredWithoutEmail), load_snapshots())

    assert problems == ["user.registered.v1: data.email was removed (or renamed)"]


def test_adding_an_optional_field_to_a_published_version_passes_the_gate():
    assert gate(catalogue_with(UserRegisteredWithLocale), load_snapshots()) == []


def test_a_version_without_a_snapshot_or_a_snapshot_without_a_version_fails_the_gate():
    snapshots = load_snapshots()
    missing = {k: v for k, v in snapshots.items() if k != "order.created.v1"}
    retired = {**snapshots, "order.created.v0": snapshots["order.created.v1"]}

    assert gate(contracts.CATALOGUE, missing) == [
        "order.created.v1 has no snapshot: run `make contract-snapshots`"
    ]
    assert [p.split(" ")[0] for p in gate(contracts.CATALOGUE, retired)] == ["order.created.v0"]


def test_recording_refuses_to_overwrite_a_snapshot_with_a_breaking_change(tmp_path: Path):
    assert record(contracts.CATALOGUE, tmp_path) == []
    before = (tmp_path / "user.registered.v1.json").read_text()

    refused = record(catalogue_with(UserRegisteredWithoutEmail), tmp_path)

    assert refused == ["user.registered.v1: data.email was removed (or renamed)"]
    assert (tmp_path / "user.registered.v1.json").read_text() == before
    assert record(catalogue_with(UserRegisteredWithLocale), tmp_path) == []
    refreshed = json.loads((tmp_path / "user.registered.v1.json").read_text())
    assert "locale" in refreshed["properties"]
