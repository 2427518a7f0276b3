"""The balancer in front of the cluster: a new connection goes to a node that answers."""

from __future__ import annotations

import socket
import threading

from chaos.proxy import Balancer
from tests import support


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    tag = b"node%d:" % server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(tag + data)

    threading.Thread(target=serve, daemon=True).start()
    return server, int(server.getsockname()[1])


def _ask(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"ping")
        return client.recv(1024)


def test_connections_skip_a_dead_node_and_spread_over_live_ones() -> None:
    live_a, port_a = _echo_server()
    live_b, port_b = _echo_server()
    dead_port = support.free_port()  # nothing listens: connecting is refused
    balancer = Balancer(
        [("127.0.0.1", dead_port), ("127.0.0.1", port_a), ("127.0.0.1", port_b)],
        support.free_port(),
    )
    balancer.start()
    try:
        answers = {_ask(balancer.port) for _ in range(6)}
        assert answers == {b"node%d:ping" % port_a, b"node%d:ping" % port_b}
        _kill(live_a)  # a node dies: every new connection lands on the other
        assert {_ask(balancer.port) for _ in range(4)} == {b"node%d:ping" % port_b}
    finally:
        balancer.stop()
        _kill(live_b)


def _kill(server: socket.socket) -> None:
    # shutdown wakes the thread blocked in accept() and closes the port at once.
    server.shutdown(socket.SHUT_RDWR)
    server.close()
