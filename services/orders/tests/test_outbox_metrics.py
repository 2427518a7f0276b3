"""/metrics of the orders web process reports the outbox as the database has it at the scrape.

The relay's own gauges go away with the relay; these must not, or a stopped relay would
hide the very backlog the outbox alert watches (deploy/monitoring/prometheus/rules.yml).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.integration


def samples(text: str, name: str) -> list[float]:
    """Every sample of an unlabelled or labelled series `name`."""
    pattern = re.compile(rf"^{name}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return [float(value) for value in pattern.findall(text)]


def test_metrics_report_the_unsent_outbox_from_the_database_once(
    client: FlaskClient, place: Callable[..., dict[str, Any]], alice: dict[str, str]
) -> None:
    empty = client.get("/metrics").get_data(as_text=True)
    assert samples(empty, "outbox_backlog") == [0.0]

    place(alice)
    place(alice)
    text = client.get("/metrics").get_data(as_text=True)

    # Nothing relays here: both order.created events wait, and the family appears once.
    assert samples(text, "outbox_backlog") == [2.0]
    assert text.count("# TYPE outbox_backlog gauge") == 1
    [age] = samples(text, "outbox_oldest_unsent_age_seconds")
    assert 0.0 <= age < 60.0
