"""The suite's gunicorn worker: gthread, taking new connections only while a thread is free.

gunicorn's gthread worker accepts every connection it may (up to `worker_connections`) and
queues their requests on its own thread pool, whether or not a thread is free. When many
connections arrive at once (a proxy filling its keep-alive pool, a client's connection
pool, a load generator), the first worker to wake takes them all; keep-alive connections
then stay with that worker, so one process, one GIL and one core serve all the traffic
while the other workers idle (gunicorn issues #2817 and #3433; the benchmark saw half the
throughput in such runs). No setting changes that: a `worker_connections` as low as the
thread count would also cap the idle keep-alive connections a worker may hold.

This worker leaves a new connection in the listen backlog while all of its threads are
busy, so that a worker with a free thread takes it; everything else is gthread's. It
relies on gthread's internal hooks (`enqueue_req`, `finish_request`, `set_accept_enabled`),
so pyproject.toml keeps gunicorn to the major version they were read from, and
shared/tests/test_gunicorn_worker.py checks the behaviour against the installed gunicorn.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gthread that accepts while it has a free thread (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Requests on the thread pool, queued or running. Touched only by the worker's
        # main thread: gthread submits and finishes requests there.
        self.in_flight = 0

    def has_free_thread(self) -> bool:
        """True while fewer requests are on the pool than it has threads."""
        return bool(self.in_flight < self.cfg.threads)

    def set_accept_enabled(self, enabled: bool) -> None:
        """Accept only when gthread would and a thread is free."""
        super().set_accept_enabled(enabled and self.has_free_thread())

    def enqueue_req(self, conn: Any) -> None:
        """Count the request, hand it to the pool, stop accepting if that was the last thread."""
        self.in_flight += 1
        super().enqueue_req(conn)
        self._update_accepting()

    def finish_request(self, conn: Any, fs: Any) -> None:
        """A request is done: its thread is free again (gthread may enqueue the next one)."""
        self.in_flight -= 1
        super().finish_request(conn, fs)
        self._update_accepting()

    def _update_accepting(self) -> None:
        # gthread itself only decides once per loop, from the connection count.
        if self.alive:
            self.set_accept_enabled(self.nr_conns < self.worker_connections)
