"""Background processes of the auth service: `python -m services.auth.worker relay`.

Auth consumes no events; its one worker is the outbox relay that publishes what the
use cases recorded. SIGTERM or SIGINT stop it after the batch in hand.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from sqlalchemy.orm import sessionmaker

log = logging.getLogger(__name__)


def run_relay_process(*, batch_size: int, idle_seconds: float) -> None:
    """Relay the outbox to RabbitMQ until SIGTERM/SIGINT."""
    from services.auth import create_app
    from services.auth.models import Outbox, db
    from shared.outbox import run_relay

    app = create_app()
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        # Only set a flag: the relay finishes (and commits) the batch in hand, then returns.
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with app.app_context():
        engine = db.engine
    run_relay(
        sessionmaker(bind=engine),
        Outbox,
        app.config["AMQP_URL"],
        batch_size=batch_size,
        idle_seconds=idle_seconds,
        stop_event=stop,
    )
    engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m services.auth.worker")
    commands = parser.add_subparsers(dest="command", required=True)
    relay = commands.add_parser("relay", help="publish outbox events to RabbitMQ")
    relay.add_argument("--batch-size", type=int, default=500)
    relay.add_argument("--idle-seconds", type=float, default=0.05)
    args = parser.parse_args(argv)
    if args.command == "relay":
        run_relay_process(batch_size=args.batch_size, idle_seconds=args.idle_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
