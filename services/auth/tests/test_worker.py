"""The auth relay process: health on METRICS_PORT, and sent events purged after retention."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from services.auth.models import Outbox, db
from services.auth.tests.conftest import AUDIENCE, ISSUER, dispose, make_app, migrate
from services.auth.worker import purge_settings
from shared.config import ConfigError, Env
from shared.db import utcnow
from shared.events import new_event
from shared.outbox import record_event
from tests.support import free_port, spawn, stop_process, wait_for, wait_until_healthy

REPO = Path(__file__).resolve().parents[3]


def test_the_purge_settings_refuse_a_retention_that_is_not_positive():
    with pytest.raises(ConfigError, match="AUTH_OUTBOX_RETENTION_SECONDS"):
        purge_settings(Env({"AUTH_OUTBOX_RETENTION_SECONDS": "0"}))
    assert purge_settings(Env({})) == (timedelta(days=7), 600.0)


@pytest.mark.integration
def test_the_relay_serves_its_health_probe_and_purges_events_sent_before_the_retention(
    database_factory, tmp_path, amqp_url
):
    url = database_factory("auth_worker")
    keys_dir = tmp_path / "keys"
    app = make_app(url, keys_dir, amqp_url=amqp_url)
    migrate(app)
    with app.app_context():
        session = db.session()
        for _ in range(3):
            record_event(session, new_event("user.registered", "/auth", {}), model=Outbox)
        session.flush()
        old, recent, unsent = session.scalars(sa.select(Outbox).order_by(Outbox.id)).all()
        old.sent_at = utcnow() - timedelta(days=8)
        recent.sent_at = utcnow() - timedelta(minutes=1)
        unsent.available_at = utcnow() + timedelta(days=1)  # not the relay's to publish yet
        session.commit()
        ids = {"old": old.id, "recent": recent.id, "unsent": unsent.id}

    port = free_port()
    log = tmp_path / "relay.log"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "AUTH_DATABASE_URL": url,
        "AUTH_SIGNING_KEYS_DIR": str(keys_dir),
        "AMQP_URL": amqp_url,
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": AUDIENCE,
        "VAR_DIR": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "METRICS_PORT": str(port),
        "METRICS_HOST": "127.0.0.1",
        "AUTH_OUTBOX_RETENTION_SECONDS": "3600",
        "AUTH_PURGE_INTERVAL_SECONDS": "0.2",
    }
    process = spawn([sys.executable, "-m", "services.auth.worker", "relay"], log=log, env=env)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, log, timeout=30)
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "outbox_backlog " in metrics

        def remaining() -> set[int]:
            with app.app_context():
                return set(db.session.scalars(sa.select(Outbox.id)))

        wait_for(lambda: ids["old"] not in remaining(), timeout=20, what="the old row purged")
        assert remaining() == {ids["recent"], ids["unsent"]}
    finally:
        code = stop_process(process)
        dispose(app)
    assert code == 0, log.read_text()[-2000:]
