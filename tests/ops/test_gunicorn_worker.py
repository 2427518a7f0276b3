"""Connections that arrive together are shared by the gunicorn workers, not taken by one,
and none of them waits for long when there are more connections than threads.

Keep-alive connections stay with the worker that accepted them, so a burst of them all
taken by one worker leaves one process (one core) serving everything. The suite's worker
(shared.gunicorn_worker) defers new connections while its threads are busy, briefly.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


def _answering_pid(connection: socket.socket, seconds: float = 0.4) -> int:
    """A keep-alive request for /slow on an open connection; the pid of the worker answering."""
    request = (
        f"GET /slow?seconds={seconds} HTTP/1.1\r\nHost: probe\r\nConnection: keep-alive\r\n\r\n"
    )
    connection.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return int(json.loads(body)["pid"])


def _on_connections(url: str, count: int, each: Callable[[socket.socket], T]) -> list[T]:
    """Open `count` connections to the server at once, then run `each` on all in parallel."""
    address = urlsplit(url)
    connections = [
        socket.create_connection((address.hostname, address.port), timeout=10) for _ in range(count)
    ]
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(each, connections))
    finally:
        for connection in connections:
            connection.close()


def test_a_burst_of_connections_is_spread_over_the_workers(probe_server_factory):
    server = probe_server_factory(WEB_CONCURRENCY="2", GUNICORN_THREADS="2")

    for _burst in range(3):
        # Opened at once, as a proxy filling its pool does; each then sends a request that
        # holds a thread for a while.
        pids = Counter(_on_connections(server.url, 8, _answering_pid))

        # 2 workers x 2 threads: each worker took at least the connections its threads
        # could serve at once; plain gthread often lets one worker take all eight.
        assert len(pids) == 2, pids
        assert min(pids.values()) >= 2, pids


def test_more_connections_than_threads_are_all_served_under_a_steady_load(
    probe_server_factory,
):
    server = probe_server_factory(WEB_CONCURRENCY="2", GUNICORN_THREADS="1")

    def keep_asking(connection: socket.socket) -> list[float]:
        """Requests back to back for 1.5 s, as a busy client does; when each was answered."""
        started = time.monotonic()
        answered = []
        while time.monotonic() - started < 1.5:
            _answering_pid(connection, seconds=0.02)
            answered.append(time.monotonic() - started)
        return answered

    answers = _on_connections(server.url, 6, keep_asking)

    # Two threads for six busy connections: each connection waits its turn, but none
    # waits until the others are done (a worker that accepted only with a free thread
    # would serve its first two connections over and over).
    assert all(times and times[0] < 0.5 for times in answers), answers
    assert min(len(times) for times in answers) >= 5, [len(t) for t in answers]
