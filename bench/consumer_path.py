"""What one `order.created` costs the notifications consumer inside a batch, in-process.

    python -m bench.consumer_path                # 20 batches of 100 events
    python -m bench.consumer_path --batches 50 --batch-size 100

No broker: the inbox batch handler the consumer calls (`inbox_batch_handler`) is fed
batches of `order.created` events for one known, verified user, on a throwaway PostgreSQL
database. Printed per event: SQL statements (a `before_cursor_execute` counter, commits
counted too) and this process's CPU milliseconds. CPU time rather than wall time: the
machine may be shared, and a busy neighbour slows a run without changing what each event
costs. The first batch warms up (imports, connections) and is not measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any


def run(batches: int, batch_size: int) -> dict[str, float]:
    """Handle `batches` batches; statements and CPU ms per event."""
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from services.notifications import create_app
    from services.notifications.handlers import CONSUMER, HANDLERS
    from services.notifications.models import Delivery, Inbox, db
    from services.notifications.tests.conftest import (
        order_created,
        user_email_verified,
        user_registered,
    )
    from shared.config import Env
    from shared.inbox import inbox_batch_handler, inbox_handler
    from tests.support import create_database, drop_database

    database_url = create_database("bench_consumer")
    with tempfile.TemporaryDirectory() as var_dir:
        app = create_app(
            env=Env(
                {
                    "APP_ENV": "test",
                    "NOTIFICATIONS_DATABASE_URL": database_url,
                    "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
                    "JWT_ISSUER": "https://bench.invalid",
                    "JWT_AUDIENCE": "bench",
                    "VAR_DIR": var_dir,
                    "LOG_LEVEL": "WARNING",
                }
            )
        )
        try:
            with app.app_context():
                upgrade()
                engine = db.engine
            one = inbox_handler(app, db, Inbox, CONSUMER, HANDLERS)
            one(user_registered("user-ada", "ada@example.com"))
            one(user_email_verified("user-ada"))
            handle = inbox_batch_handler(app, db, Inbox, CONSUMER, HANDLERS)
            handle([order_created("user-ada") for _ in range(batch_size)])  # warm-up
            work = [[order_created("user-ada") for _ in range(batch_size)] for _ in range(batches)]
            statements = [0]

            def count(*_args: Any) -> None:
                statements[0] += 1

            sa.event.listen(engine, "before_cursor_execute", count)
            sa.event.listen(engine, "commit", count)
            cpu, wall = time.process_time(), time.perf_counter()
            for batch in work:
                handle(batch)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            sa.event.remove(engine, "before_cursor_execute", count)
            sa.event.remove(engine, "commit", count)
            with app.app_context():
                mails = db.session.scalar(sa.select(sa.func.count()).select_from(Delivery))
                db.session.remove()
                db.engine.dispose()
        finally:
            drop_database(database_url)
    events = batches * batch_size
    return {
        "events": events,
        "deliveries": float(mails or 0),
        "statements_per_event": statements[0] / events,
        "cpu_ms_per_event": 1000 * cpu / events,
        "wall_seconds": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    result = run(args.batches, args.batch_size)
    sys.stdout.write(
        f"{result['events']:.0f} order.created in batches of {args.batch_size} "
        f"({result['deliveries']:.0f} deliveries in the database): "
        f"{result['statements_per_event']:.2f} SQL statements per event (commits included), "
        f"{result['cpu_ms_per_event']:.3f} CPU ms per event, {result['wall_seconds']:.2f} wall s\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
