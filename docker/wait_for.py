"""Wait until a database accepts connections: `python wait_for.py AUTH_DATABASE_URL`.

Containers start together; a service that migrates before its PostgreSQL is up would
crash-loop instead of waiting a few seconds. Takes the *name* of the variable, so the URL
(and its password) never appears on a command line or in this script's output.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shared.db import normalize_database_url


def wait_for_database(url: str, *, timeout: float, interval: float = 1.0) -> float:
    """Block until `SELECT 1` succeeds; return the seconds waited, raise TimeoutError."""
    url = normalize_database_url(url)
    connect_args = {"connect_timeout": 3} if url.startswith("postgresql") else {}
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args)
    started = time.monotonic()
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(sa.text("SELECT 1"))
                return time.monotonic() - started
            except sa.exc.OperationalError as exc:
                if time.monotonic() - started + interval > timeout:
                    reason = str(exc.orig or exc).strip().splitlines()[0]
                    raise TimeoutError(reason) from None
                time.sleep(interval)
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit 1 when the database did not answer in time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variable", help="name of the environment variable holding the URL")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between tries")
    args = parser.parse_args(argv)
    url = os.environ.get(args.variable, "")
    if not url:
        sys.stderr.write(f"wait_for: {args.variable} is not set\n")
        return 2
    shown = make_url(normalize_database_url(url)).render_as_string(hide_password=True)
    try:
        waited = wait_for_database(url, timeout=args.timeout, interval=args.interval)
    except TimeoutError as exc:
        sys.stderr.write(f"wait_for: {shown} not reachable after {args.timeout:g}s: {exc}\n")
        return 1
    except (sa.exc.ArgumentError, ValueError) as exc:
        sys.stderr.write(f"wait_for: {args.variable} is not a usable database URL: {exc}\n")
        return 2
    sys.stderr.write(f"wait_for: {shown} is up (waited {waited:.1f}s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
