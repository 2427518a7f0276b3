"""Connections that arrive together are shared by the gunicorn workers, not taken by one.

Keep-alive connections stay with the worker that accepted them, so a burst of them all
taken by one worker leaves one process (one core) serving everything. The suite's worker
(shared.gunicorn_worker) accepts only while it has a free thread.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

REQUEST = b"GET /slow?seconds=0.4 HTTP/1.1\r\nHost: probe\r\nConnection: keep-alive\r\n\r\n"


def _answering_pid(connection: socket.socket) -> int:
    """Send one keep-alive request on an open connection; the pid of the worker answering."""
    connection.sendall(REQUEST)
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


def test_a_burst_of_connections_is_spread_over_the_workers(probe_server_factory):
    server = probe_server_factory(WEB_CONCURRENCY="2", GUNICORN_THREADS="2")
    address = urlsplit(server.url)

    for _burst in range(3):
        # Opened at once, as a proxy filling its pool does; each then sends a request that
        # holds a thread for a while.
        connections = [
            socket.create_connection((address.hostname, address.port), timeout=10) for _ in range(8)
        ]
        try:
            with ThreadPoolExecutor(max_workers=len(connections)) as pool:
                pids = Counter(pool.map(_answering_pid, connections))
        finally:
            for connection in connections:
                connection.close()

        # 2 workers x 2 threads: each worker took at least the connections its threads
        # could serve at once; plain gthread often lets one worker take all eight.
        assert len(pids) == 2, pids
        assert min(pids.values()) >= 2, pids
