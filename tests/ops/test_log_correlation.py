"""Log lines of event handlers carry the trace id of the request that caused the event."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from shared.context import child_traceparent, correlation, trace_id_of
from shared.observability import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was: configure_logging changes it for the process."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_line_logged_while_handling_an_event_carries_its_trace_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("ops-probe", "INFO")  # here: it writes to the sys.stdout capsys set
    traceparent = child_traceparent(None)

    with correlation("req-42", traceparent):
        logging.getLogger("ops.handler").info("order confirmed", extra={"order_id": "o-1"})
    logging.getLogger("ops.handler").info("between events")

    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["trace_id"] == trace_id_of(traceparent)
    assert first["request_id"] == "req-42"
    assert first["service"] == "ops-probe"
    assert first["order_id"] == "o-1"
    assert second["trace_id"] is None
