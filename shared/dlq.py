"""Inspect and replay a consumer's dead-letter queue: `dlq [--amqp-url URL] COMMAND CONSUMER`.

    dlq list orders                       count, then one line per message
    dlq show orders 5b0c...               one message: headers, properties, event JSON
    dlq replay orders --id 5b0c... | --all  back onto orders.events, retries reset
    dlq purge orders --yes                drop every message

How browsing works: the tool basic.gets the messages without acking them, so it holds them
while it runs, and then nacks them with requeue (replay acks the ones it republished).
RabbitMQ puts requeued messages of a classic queue (the DLQ is one) back in their original
position, so `list` leaves the queue as it found it; nothing consumes a DLQ meanwhile.

Replay as the consumer's own broker user (its AMQP_URL): the copies carry that user as
`user_id` and their original producer in a header, which the consumer believes only from its
own user (shared.messaging.producers).

Exit codes: 0 done; 1 no message matched; 2 usage error; 3 broker unreachable or no such
DLQ; 4 some messages could not be replayed (they stay in the DLQ).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pika
import pika.exceptions

from shared.messaging import (
    FAILED_AT_HEADER,
    PRODUCER_HEADER,
    REASON_HEADER,
    broker_user,
    connection_parameters,
    dlq_name,
    original_producer,
    queue_name,
    republished_properties,
)

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_REPLAY_FAILED = 4
DEFAULT_LIMIT = 10_000


class DlqMissing(LookupError):
    """The consumer has no dead-letter queue on this broker/vhost."""


@dataclass
class DeadLetter:
    """One message fetched (and held, unacked) from a DLQ."""

    delivery_tag: int
    properties: Any
    body: bytes

    @property
    def headers(self) -> dict[str, Any]:
        """The AMQP headers (empty dict when none)."""
        return dict(self.properties.headers or {})

    def body_json(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None when it is not one."""
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None
        return value if isinstance(value, dict) else None

    @property
    def event_id(self) -> str:
        """message_id, else the CloudEvent id in the body, else '-'."""
        body = self.body_json() or {}
        return str(self.properties.message_id or body.get("id") or "-")

    @property
    def type(self) -> str:
        """The event type from the properties or the body."""
        body = self.body_json() or {}
        return str(self.properties.type or body.get("type") or "-")

    @property
    def reason(self) -> str:
        """Why it was dead-lettered: ours (malformed, handler-failed) or the broker's."""
        headers = self.headers
        reason = headers.get(REASON_HEADER) or headers.get("x-first-death-reason")
        return _text(reason) if reason else "-"

    @property
    def time(self) -> str:
        """When it was dead-lettered, as best known."""
        headers = self.headers
        if headers.get(FAILED_AT_HEADER):
            return _text(headers[FAILED_AT_HEADER])
        deaths = headers.get("x-death") or []
        if deaths and isinstance(deaths[0], dict) and deaths[0].get("time"):
            return _text(deaths[0]["time"])
        if self.properties.timestamp:
            return datetime.fromtimestamp(self.properties.timestamp, UTC).isoformat()
        return "-"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


@contextmanager
def _channel(amqp_url: str) -> Iterator[Any]:
    connection = pika.BlockingConnection(
        connection_parameters(amqp_url, connection_attempts=1, connection_name="dlq-cli")
    )
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        if connection.is_open:
            connection.close()


def _depth(channel: Any, queue: str) -> int:
    """Messages ready in the queue; DlqMissing when there is no such queue."""
    try:
        return int(channel.queue_declare(queue=queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            raise DlqMissing(queue) from None
        raise


def _hold_all(channel: Any, queue: str, limit: int) -> tuple[int, list[DeadLetter]]:
    """Fetch up to `limit` messages unacked; return (queue depth, messages)."""
    depth = _depth(channel, queue)
    held: list[DeadLetter] = []
    while len(held) < min(depth, limit):
        method, properties, body = channel.basic_get(queue=queue, auto_ack=False)
        if method is None:
            break
        held.append(DeadLetter(method.delivery_tag, properties, body))
    return depth, held


def _release(channel: Any) -> None:
    """Requeue every message this channel still holds."""
    if channel.is_open:
        channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)


def _write(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _error(message: str) -> None:
    sys.stderr.write(f"dlq: {message}\n")


def cmd_list(channel: Any, consumer: str, limit: int) -> int:
    """Print the DLQ's depth and one line per message: id, type, reason, time."""
    queue = dlq_name(consumer)
    depth, held = _hold_all(channel, queue, limit)
    try:
        _write(f"{queue}: {depth} message(s)")
        for message in held:
            _write(f"{message.event_id}  {message.type}  {message.reason}  {message.time}")
        if depth > len(held):
            _write(f"... {depth - len(held)} more not shown (--limit)")
    finally:
        _release(channel)
    return EXIT_OK


def cmd_show(channel: Any, consumer: str, event_id: str, limit: int) -> int:
    """Print one message in full (properties, headers, body) as JSON."""
    _depth, held = _hold_all(channel, dlq_name(consumer), limit)
    try:
        for message in held:
            if message.event_id != event_id:
                continue
            props = message.properties
            body = message.body_json()
            document: dict[str, Any] = {
                "event_id": message.event_id,
                "type": message.type,
                "reason": message.reason,
                "time": message.time,
                "properties": {
                    "content_type": props.content_type,
                    "message_id": props.message_id,
                    "type": props.type,
                    "timestamp": props.timestamp,
                    "delivery_mode": props.delivery_mode,
                    "user_id": props.user_id,
                },
                "headers": message.headers,
            }
            if body is not None:
                document["event"] = body
            else:  # malformed: show the raw bytes as text
                document["body"] = message.body.decode(errors="replace")
            _write(json.dumps(document, indent=2, default=_jsonable, sort_keys=True))
            return EXIT_OK
    finally:
        _release(channel)
    _error(f"no message {event_id} in {dlq_name(consumer)}")
    return EXIT_NOT_FOUND


def cmd_replay(
    channel: Any, consumer: str, ids: Sequence[str] | None, limit: int, *, user: str = ""
) -> int:
    """Republish chosen messages to the consumer's main queue (retries reset), then ack them.

    `user` is the broker user the tool is connected as: the copies carry it as `user_id`
    and their original producer in a header, which the consumer believes only when `user`
    is its own (run the tool with the consumer's AMQP_URL).
    """
    target = queue_name(consumer)
    _depth, held = _hold_all(channel, dlq_name(consumer), limit)
    wanted = set(ids) if ids is not None else None
    chosen = [m for m in held if wanted is None or m.event_id in wanted]
    replayed = failed = 0
    try:
        for message in chosen:
            props = message.properties
            # Our retry bookkeeping and the broker's x-death history go: a fresh start.
            headers = {k: v for k, v in message.headers.items() if not k.startswith("x-")}
            headers["x-replayed-at"] = datetime.now(UTC).isoformat()
            headers[PRODUCER_HEADER] = original_producer(props, user)
            copy = republished_properties(props, headers, user_id=user)
            try:
                # Default exchange straight to the queue: only this consumer sees it again.
                channel.basic_publish("", target, message.body, properties=copy, mandatory=True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                failed += 1
                _error(f"could not replay {message.event_id} to {target}: {exc}")
                continue
            channel.basic_ack(delivery_tag=message.delivery_tag)
            replayed += 1
    finally:
        _release(channel)
    _write(f"replayed {replayed} message(s) to {target}")
    if failed:
        return EXIT_REPLAY_FAILED
    if wanted is not None:
        missing = wanted - {m.event_id for m in chosen}
        if missing:
            _error(f"not in {dlq_name(consumer)}: {', '.join(sorted(missing))}")
            return EXIT_NOT_FOUND
    return EXIT_OK


def cmd_purge(channel: Any, consumer: str) -> int:
    """Delete every message in the DLQ."""
    queue = dlq_name(consumer)
    _depth(channel, queue)  # DlqMissing for an unknown consumer, rather than a silent 0
    count = channel.queue_purge(queue=queue).method.message_count
    _write(f"purged {count} message(s) from {queue}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the `dlq` command."""
    parser = argparse.ArgumentParser(
        prog="dlq", description="Inspect and replay a consumer's dead-letter queue."
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("AMQP_URL"), help="broker URL (default: $AMQP_URL)"
    )
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help="read at most this many messages"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="count and one line per message")
    listing.add_argument("consumer")
    show = commands.add_parser("show", help="one message in full, as JSON")
    show.add_argument("consumer")
    show.add_argument("event_id")
    replay = commands.add_parser("replay", help="put messages back on the consumer's queue")
    replay.add_argument("consumer")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="ids", action="append", metavar="EVENT_ID")
    which.add_argument("--all", action="store_true")
    purge = commands.add_parser("purge", help="delete every message")
    purge.add_argument("consumer")
    purge.add_argument("--yes", action="store_true", help="really delete them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = build_parser().parse_args(argv)
    if not args.amqp_url:
        _error("no broker: pass --amqp-url or set AMQP_URL")
        return EXIT_USAGE
    if args.command == "purge" and not args.yes:
        _error("purge deletes every message for good; add --yes")
        return EXIT_USAGE
    try:
        with _channel(args.amqp_url) as channel:
            if args.command == "list":
                return cmd_list(channel, args.consumer, args.limit)
            if args.command == "show":
                return cmd_show(channel, args.consumer, args.event_id, args.limit)
            if args.command == "replay":
                return cmd_replay(
                    channel, args.consumer, args.ids, args.limit, user=broker_user(args.amqp_url)
                )
            return cmd_purge(channel, args.consumer)
    except DlqMissing as exc:
        _error(f"no dead-letter queue {exc} (unknown consumer, or it never started)")
        return EXIT_UNAVAILABLE
    except pika.exceptions.AMQPConnectionError as exc:
        _error(f"cannot reach the broker: {exc!r}")
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
