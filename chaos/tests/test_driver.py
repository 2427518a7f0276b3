"""The chaos driver as a client: open loop, and a reset connection asked again with the
same Idempotency-Key (the API's documented retry), each attempt recorded."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from chaos.driver import Driver, Receiver


class Shop:
    """An orders endpoint that drops the first connection of every key without answering,
    then answers 201 with an order id; it records the keys and the users' tokens."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.tokens: list[str] = []
        shop = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers["Idempotency-Key"]
                first = key not in shop.keys
                shop.keys.append(key)
                shop.tokens.append(self.headers["Authorization"])
                if first:
                    self.close_connection = True
                    self.connection.close()  # a gateway killed mid-request
                    return
                body = json.dumps({"id": f"order-{key}"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/orders"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def shop() -> Iterator[Shop]:
    shop = Shop()
    yield shop
    shop.server.shutdown()
    shop.server.server_close()


def test_a_reset_order_is_placed_again_with_the_same_key_and_counted_once(shop: Shop) -> None:
    started = time.time()
    driver = Driver(shop.url, ["alice", "bob"], now=lambda: time.time() - started)

    driver.run(orders=4, rate=20)

    assert len(driver.answers) == 4
    assert {a.status for a in driver.answers} == {201}
    assert all(a.attempts == 2 for a in driver.answers)
    assert sorted(a.order_id or "" for a in driver.answers) == sorted(
        f"order-{key}" for key in set(shop.keys)
    )
    assert len(set(shop.keys)) == 4 and len(shop.keys) == 8  # each key twice
    assert [c.failure for c in driver.calls].count("connection") == 4
    assert sorted(shop.tokens).count("Bearer alice") == 4  # users in turn


def test_the_receiver_records_every_webhook_id_it_is_sent() -> None:
    receiver = Receiver()
    try:
        for webhook_id in ("a", "b", "a"):
            answer = requests.post(
                f"http://127.0.0.1:{receiver.port}/hooks/0",
                json={},
                headers={"webhook-id": webhook_id},
                timeout=5,
            )
            assert answer.status_code == 204
    finally:
        receiver.stop()
    assert receiver.ids == ["a", "b", "a"]
