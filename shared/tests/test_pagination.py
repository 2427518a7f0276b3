"""Cursors round-trip the page key and refuse anything that is not one of ours."""

import uuid
from datetime import UTC, datetime

import pytest
from marshmallow import Schema, ValidationError

from shared.pagination import CursorField, PageKey


class PageArgs(Schema):
    cursor = CursorField()


def test_a_cursor_carries_the_page_key_back_unchanged():
    key = PageKey(created_at=datetime(2026, 11, 24, 12, 0, 1, 5, tzinfo=UTC), id=uuid.uuid4())
    cursor = PageArgs().dump({"cursor": key})["cursor"]
    assert PageArgs().load({"cursor": cursor})["cursor"] == key


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "", "x" * 500, "WyIyMDI2LTExLTI0VDEyOjAwOjAxIiwgIm5vdC1hLXV1aWQiXQ", 7],
    ids=["not base64 json", "empty", "too long", "bad uuid", "not a string"],
)
def test_cursors_that_are_not_ours_are_a_validation_error(cursor):
    with pytest.raises(ValidationError):
        PageArgs().load({"cursor": cursor})
