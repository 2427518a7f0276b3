"""What a conditional GET saves: a page of 20 orders answered 200 against 304, in-process.

    python -m bench.conditional [--requests 2000]

The orders app on a throwaway PostgreSQL database (bench.write_path's `orders_app`), one
user with 20 orders. The same GET of their first page, once without and once with the
page's ETag in If-None-Match: bytes of the answer (status line and headers are left out,
they are the same size either way) and this process's CPU per request. A client that
polls with its ETag gets a 304 with no body, and the gateway does not count a 304 against
its rate limit (shared/conditional.py, gateway/ratelimit.py).
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.write_path import orders_app
from services.orders.tests.helpers import order_body

PAGE = "/api/v1/orders?limit=20"


def main(argv: list[str] | None = None) -> int:
    """Print bytes and CPU per request, 200 against 304."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    with orders_app() as (app, headers):
        client = app.test_client()
        for _ in range(20):
            assert (
                client.post("/api/v1/orders", json=order_body(), headers=headers).status_code == 201
            )
        first = client.get(PAGE, headers=headers)
        etag = first.headers["ETag"]
        for label, extra, status in (
            ("200, whole page", {}, 200),
            ("304, If-None-Match matches", {"If-None-Match": etag}, 304),
        ):
            sent = {**headers, **extra}
            for _ in range(100):  # warm up
                client.get(PAGE, headers=sent)
            size = 0
            started = time.process_time()
            for _ in range(args.requests):
                response = client.get(PAGE, headers=sent)
                assert response.status_code == status, response.status_code
                size = len(response.get_data())
            cpu_ms = (time.process_time() - started) * 1000 / args.requests
            sys.stdout.write(
                f"{label:<28} {args.requests} requests: body {size} bytes, "
                f"{cpu_ms:.2f} ms CPU/request\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
