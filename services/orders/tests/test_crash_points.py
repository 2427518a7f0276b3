"""The relay killed between the broker's confirms and marking its rows sent loses nothing.

Run with the `relay.after_publish` crash point armed, the real relay process publishes one
batch and kills itself (SIGKILL) before it marks the rows. At that moment every row must
still be unsent: a relay that marked rows before the broker confirmed them (or committed
the mark before publishing) would show them sent here, and a broker refusal would then
lose them. A relay started again publishes the batch a second time under the same event
ids, which the consumers' inboxes turn into one effect each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from services.orders.models import Outbox, db
from services.orders.tests.helpers import EventQueue
from shared.events import new_event
from shared.faults import RELAY_AFTER_PUBLISH
from shared.outbox import record_event
from tests.support import log_tail, spawn, stop_process, wait_for

REPO = Path(__file__).resolve().parents[3]


def relay_process(
    database_url: str, amqp_url: str, log: Path, **env: str
) -> subprocess.Popen[bytes]:
    """The orders relay as production runs it, on the test's database and vhost."""
    environ = {
        **os.environ,
        "APP_ENV": "test",
        "ORDERS_DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "PYTHONPATH": str(REPO),
        **env,
    }
    if "FAULT_POINTS" not in env:
        environ.pop("FAULT_POINTS", None)
    return spawn([sys.executable, "-m", "services.orders.worker", "relay"], log=log, env=environ)


def unsent(app: Flask) -> int:
    """Outbox rows not marked sent."""
    with app.app_context():
        count = db.session.scalar(
            sa.select(sa.func.count()).select_from(Outbox).where(Outbox.sent_at.is_(None))
        )
        db.session.rollback()
    return int(count or 0)


@pytest.mark.chaos
@pytest.mark.integration
def test_a_relay_killed_after_the_confirms_marks_nothing_and_its_successor_loses_nothing(
    app: Flask, orders_database_url: str, amqp_url: str, order_events: EventQueue, tmp_path
):
    events = [
        new_event("order.created", "/orders", {"order_id": f"o-{n}", "n": n}) for n in range(20)
    ]
    with app.app_context():
        for event in events:
            record_event(db.session, event, model=Outbox)
        db.session.commit()
    log = tmp_path / "relay.log"

    crashed = relay_process(orders_database_url, amqp_url, log, FAULT_POINTS=RELAY_AFTER_PUBLISH)
    try:
        code = crashed.wait(timeout=60)
    finally:
        if crashed.poll() is None:
            crashed.kill()
    assert code == -signal.SIGKILL, log_tail(log)
    assert "crash point reached" in log.read_text()
    # Confirmed by the broker, not yet marked: all of the batch is still to send.
    assert unsent(app) == len(events), "the relay marked rows sent before the crash point"
    first = order_events.wait_for(len(events))
    assert sorted(e.id for e in first) == sorted(e.id for e in events)

    successor = relay_process(orders_database_url, amqp_url, log)
    try:
        wait_for(lambda: unsent(app) == 0, timeout=30, what="the successor relaying the batch")
    finally:
        assert stop_process(successor) == 0, log_tail(log)

    again = order_events.wait_for(len(events))
    published = Counter(event.id for event in first + again)
    assert set(published) == {event.id for event in events}  # lost 0
    # Each event went out twice under one id: the inbox of each consumer applies it once.
    assert set(published.values()) == {2}
    assert order_events.drain() == []
