"""The client side of a chaos run or a soak: the open-loop order driver and the webhook
receiver, each recording what it saw for the verdict (chaos.observe)."""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.events import ORDER_BODY
from chaos import verdict

CLIENT_TIMEOUT_SECONDS = 30.0
CONNECTION_RETRIES = 2  # after a reset, with the same Idempotency-Key
DRIVER_THREADS = 64  # orders in flight at most; more wait their turn, from when they were due


class Receiver:
    """An HTTP endpoint that answers 204 and records every `webhook-id` it gets."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        lock = threading.Lock()
        ids = self.ids

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with lock:
                    ids.append(self.headers.get("webhook-id") or "")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Answer:
    """One order as the client saw it in the end (its last attempt)."""

    due: float
    answered: float
    status: int
    order_id: str | None
    user: int
    attempts: int = 1


@dataclass
class Driver:
    """Places orders open loop: order k is due at start + k / rate whatever the answers
    before it, each as one of `tokens`' users in turn, with an Idempotency-Key of its own.

    A reset connection (a gateway killed mid-request) leaves the outcome unknown: the client
    asks again with the same key, as the API documents. Every attempt goes into `calls`
    (times from `now`), every order's last answer into `answers`.
    """

    url: str
    tokens: Sequence[str]
    now: Callable[[], float]
    calls: list[verdict.Call] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._local = threading.local()
        self._run_key = os.urandom(4).hex()

    def run(self, orders: int, rate: float) -> None:
        """Place `orders` orders at `rate` per second; returns when every one is answered."""
        with ThreadPoolExecutor(max_workers=DRIVER_THREADS, thread_name_prefix="driver") as pool:
            start = time.time() + 0.2
            for k in range(orders):
                due = start + k / rate
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self.place, k, due)

    def place(self, k: int, due: float) -> None:
        user = k % len(self.tokens)
        tries = 0
        while True:
            tries += 1
            sent = self.now()
            status, order_id, failure = self._attempt(user, f"chaos-{self._run_key}-{k}")
            self.calls.append(verdict.Call(sent, self.now(), status, failure))
            if failure != "connection" or tries > CONNECTION_RETRIES:
                break
            time.sleep(0.5)
        self.answers.append(Answer(due, time.time(), status, order_id, user, tries))

    def _attempt(self, user: int, key: str) -> tuple[int, str | None, str]:
        """(status, order id, failure): failure is "timeout", "connection" or ""."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        try:
            answer = session.post(
                self.url,
                json=ORDER_BODY,
                headers={"Authorization": f"Bearer {self.tokens[user]}", "Idempotency-Key": key},
                timeout=CLIENT_TIMEOUT_SECONDS,
            )
        except requests.Timeout:
            return 0, None, "timeout"
        except requests.RequestException:
            return 0, None, "connection"
        order_id = answer.json().get("id") if answer.status_code == 201 else None
        return answer.status_code, order_id, ""
