"""The consumer floor: a plain pika consumer that commits one row per message, then acks.

    BASELINE_AMQP_URL=... BASELINE_DATABASE_URL=... python -m bench.baseline_consumer QUEUE

What the notifications consumer does at least for each event, and nothing else: take a
persistent message from a quorum queue (prefetch 20, as the services consume), insert a
row keyed by the event id, commit, ack. The benchmark runs it in the same run as the
notifications consumer, on its own vhost, so "consumer / baseline" shows what the suite's
consumer layers (inbox, contracts, rendering, deliveries, logging, metrics) cost.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import pika
import psycopg
from psycopg.types.json import Jsonb

PREFETCH = 20
TABLE = (
    "CREATE TABLE IF NOT EXISTS consumed (event_id text PRIMARY KEY, type text NOT NULL,"
    " payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
)


def main(argv: list[str] | None = None) -> int:
    """Consume QUEUE until SIGTERM: one committed row per message, acked after the commit."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m bench.baseline_consumer QUEUE\n")
        return 2
    queue = args[0]
    db = psycopg.connect(os.environ["BASELINE_DATABASE_URL"])
    db.execute(TABLE)
    db.commit()
    connection = pika.BlockingConnection(pika.URLParameters(os.environ["BASELINE_AMQP_URL"]))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)

    def on_message(ch: Any, method: Any, _properties: Any, body: bytes) -> None:
        event = json.loads(body)
        db.execute(
            "INSERT INTO consumed (event_id, type, payload) VALUES (%s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            (str(event["id"]), str(event["type"]), Jsonb(event)),
        )
        db.commit()
        ch.basic_ack(delivery_tag=method.delivery_tag)

    def stop(_signum: int, _frame: Any) -> None:
        # Stop between messages: the callback in hand has committed and acked.
        connection.add_callback_threadsafe(channel.stop_consuming)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    channel.basic_consume(queue=queue, on_message_callback=on_message)
    try:
        channel.start_consuming()
    finally:
        if connection.is_open:
            connection.close()
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
