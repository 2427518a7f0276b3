"""The suite's purge jobs, run once each with their configured retention; JSON on stdout.

    python -m bench.scale_purge        (in the suite's environment: its databases and config)

What the relays and consumers run every 10 minutes (`*_PURGE_INTERVAL_SECONDS`): orders'
housekeeping (expired idempotency keys, sent outbox rows, old inbox rows), auth's sent
outbox rows, notifications' old inbox rows, finished deliveries and old notifications.
bench/scale.py seeds an hour of rows past each inbox, outbox and key retention and runs this
once: one run deletes everything due, which is what the six runs of an hour do between them
(each deletes what aged out since the previous one). Deliveries and notifications are
seeded over the whole year instead, so their purges do the catch-up of a first run on a
database that kept every row (deliveries older than DELIVERY_RETENTION_SECONDS, then the
notifications older than NOTIFICATION_RETENTION_SECONDS that no delivery refers to any
more), and leave the tables at about retention x rate. Then VACUUM (ANALYZE), as autovacuum
would after that many deletions, so the freed space is reusable; `deliveries`, which loses
most of its rows, with FULL so its recorded size is the one the purges keep.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import sessionmaker


def _vacuum(engine: Any, tables: list[str], *, full: bool = False) -> None:
    options = "FULL, ANALYZE" if full else "ANALYZE"
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            conn.exec_driver_sql(f"VACUUM ({options}) {table}")


def run() -> dict[str, Any]:
    """Run every purge; rows deleted and seconds per service."""
    from services.auth import create_app as auth_app
    from services.auth.models import Outbox as AuthOutbox
    from services.auth.models import db as auth_db
    from services.auth.worker import purge_settings
    from services.notifications import create_app as notifications_app
    from services.notifications.models import Inbox as NotificationsInbox
    from services.notifications.models import db as notifications_db
    from services.notifications.worker import delivery_purge, notification_purge
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
    sessions = sessionmaker(bind=engine)
    started = time.monotonic()
    deleted = inbox_purge(
        sessions,
        NotificationsInbox,
        timedelta(seconds=app.config["INBOX_RETENTION_SECONDS"]),
    )()
    results["notifications"] = {"inbox": deleted, "seconds": round(time.monotonic() - started, 2)}
    # Deliveries first: a notification is purged only once no delivery refers to it.
    for table, purge in (
        ("deliveries", delivery_purge(app, sessions)),
        ("notifications", notification_purge(app, sessions)),
    ):
        started = time.monotonic()
        deleted = purge()
        results["notifications"][table] = deleted
        results["notifications"][f"{table}_seconds"] = round(time.monotonic() - started, 2)
    _vacuum(engine, ["inbox", "webhook_attempts", "notifications"])
    # The catch-up frees most of `deliveries`; a plain VACUUM keeps those pages for reuse,
    # and the sizes recorded next would still be a year's. FULL rewrites the table to what
    # the purges keep it at when they run from the start (an operator does the same once,
    # or uses pg_repack, after the first purge of a database that kept every row).
    _vacuum(engine, ["deliveries"], full=True)
    engine.dispose()
    return results


def main() -> int:
    """Run and print the result as one JSON line."""
    sys.stdout.write(json.dumps(run()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
