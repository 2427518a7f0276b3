"""With span export on, a request's database transaction is a span inside the request's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.orm import Session

from shared.observability import TRANSACTION_SPAN, _trace_transactions


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A provider recording into memory, with the transaction listeners on for the test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    remove = _trace_transactions(provider)
    yield provider, exporter
    remove()


def test_a_transaction_inside_a_request_span_is_its_child_from_begin_to_commit(spans) -> None:
    provider, exporter = spans
    engine = sa.create_engine("sqlite://")
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("POST /api/v1/orders") as request:
        with Session(engine) as session:
            session.execute(sa.text("SELECT 1"))
            session.commit()

    transaction, outer = exporter.get_finished_spans()
    assert transaction.name == TRANSACTION_SPAN
    assert transaction.parent is not None
    assert transaction.parent.span_id == request.get_span_context().span_id
    assert outer.start_time <= transaction.start_time < transaction.end_time <= outer.end_time


def test_a_transaction_outside_any_span_makes_none(spans) -> None:
    _provider, exporter = spans
    engine = sa.create_engine("sqlite://")

    with Session(engine) as session:
        session.execute(sa.text("SELECT 1"))
        session.commit()

    assert exporter.get_finished_spans() == ()
