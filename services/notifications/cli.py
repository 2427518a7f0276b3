"""`flask` commands of the notifications service: what an operator does to deliveries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from services.notifications import deliveries
from services.notifications.models import Channel, db
from shared.db import utcnow
from shared.uow import unit_of_work

deliveries_cli = AppGroup("deliveries", help="Email and webhook deliveries.")

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class PointInTime(click.ParamType):
    """An ISO 8601 time (UTC unless it says otherwise) or a duration back from now: 6h, 2d."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The datetime meant by `value`; a usage error when it is neither form."""
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        match = _DURATION.match(text)
        if match:
            return utcnow() - timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is neither an ISO 8601 time (2026-03-01T08:00Z) "
                "nor a duration back from now (90m, 6h, 2d)",
                param,
                ctx,
            )
        # In UTC, as the database stores it (SQLite keeps no offset and compares text).
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@deliveries_cli.command("retry-failed")
@click.option(
    "--channel",
    type=click.Choice([channel.value for channel in Channel]),
    help="Only this channel.",
)
@click.option(
    "--since",
    type=PointInTime(),
    help="Only those that failed at or after this time: 2026-03-01T08:00Z, or 6h, 2d back.",
)
def retry_failed(channel: str | None, since: datetime | None) -> None:
    """Send failed deliveries again, each with a fresh set of attempts."""
    with unit_of_work(db.session()) as session:
        count = deliveries.retry_failed_deliveries(
            session=session, now=utcnow(), channel=channel, since=since
        )
    click.echo(f"{count} failed {'delivery' if count == 1 else 'deliveries'} queued again")


def init_app(app: Flask) -> None:
    """Register the commands on the app's `flask` CLI."""
    app.cli.add_command(deliveries_cli)
