"""The suite's purge jobs, run once each with their configured retention; JSON on stdout.

    python -m bench.scale_purge        (in the suite's environment: its databases and config)

What the relays and consumers run every 10 minutes (`*_PURGE_INTERVAL_SECONDS`): orders'
housekeeping (expired idempotency keys, sent outbox rows, old inbox rows), auth's sent
outbox rows, notifications' old inbox rows. bench/scale.py seeds an hour of rows past each
retention and runs this once: one run deletes everything due, which is what the six runs of
an hour do between them (each deletes what aged out since the previous one). Then VACUUM
(ANALYZE), as autovacuum would after that many deletions, so the freed space is reusable.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import sessionmaker


def _vacuum(engine: Any, tables: list[str]) -> None:
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")


def run() -> dict[str, Any]:
    """Run every purge; rows deleted and seconds per service."""
    from services.auth import create_app as auth_app
    from services.auth.models import Outbox as AuthOutbox
    from services.auth.models import db as auth_db
    from services.auth.worker import purge_settings
    from services.notifications import create_app as notifications_app
    from services.notifications.models import Inbox as NotificationsInbox
    from services.notifications.models import db as notifications_db
    from services.orders import create_app as orders_app
    from services.orders.models import db as orders_db
    from services.orders.worker import housekeeping
    from shared.config import Env
    from shared.worker import inbox_purge, outbox_purge

    results: dict[str, Any] = {}
    app = orders_app()
    with app.app_context():
        engine = orders_db.engine
    started = time.monotonic()
    housekeeping(app, sessionmaker(bind=engine, expire_on_commit=False))()
    results["orders"] = {"seconds": round(time.monotonic() - started, 2)}
    _vacuum(engine, ["idempotency_keys", "outbox", "inbox"])
    engine.dispose()

    app = auth_app()
    with app.app_context():
        engine = auth_db.engine
    retention, _ = purge_settings(Env())
    started = time.monotonic()
    deleted = outbox_purge(sessionmaker(bind=engine), AuthOutbox, retention)()
    results["auth"] = {"outbox": deleted, "seconds": round(time.monotonic() - started, 2)}
    _vacuum(engine, ["outbox"])
    engine.dispose()

    app = notifications_app()
    with app.app_context():
        engine = notifications_db.engine
    started = time.monotonic()
    deleted = inbox_purge(
        sessionmaker(bind=engine),
        NotificationsInbox,
        timedelta(seconds=app.config["INBOX_RETENTION_SECONDS"]),
    )()
    results["notifications"] = {"inbox": deleted, "seconds": round(time.monotonic() - started, 2)}
    _vacuum(engine, ["inbox"])
    engine.dispose()
    return results


def main() -> int:
    """Run and print the result as one JSON line."""
    sys.stdout.write(json.dumps(run()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
