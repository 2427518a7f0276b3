"""The suite's gunicorn worker: gthread that lets an idle worker take new connections first.

gunicorn's gthread worker accepts every connection it may (up to `worker_connections`) and
queues their requests on its own thread pool, whether or not a thread is free. When many
connections arrive at once (a proxy filling its keep-alive pool, a client's connection
pool, a load generator), the first worker to wake takes them all; keep-alive connections
then stay with that worker, so one process, one GIL and one core serve all the traffic
while the other workers idle (gunicorn issues #2817 and #3433; the benchmark saw half the
throughput in such runs). No setting changes that: a `worker_connections` as low as the
thread count would also cap the idle keep-alive connections a worker may hold.

This worker, while all of its threads are busy, leaves new connections in the listen
backlog for `ACCEPT_PAUSE_SECONDS`, so that a worker with a free thread takes them. Only
for that long: a busy worker still accepts one connection per pause, or under a steady
load the connections it already serves (whose next requests keep its threads busy) would
starve those waiting in the backlog. Everything else is gthread's. It relies on gthread's
internal hooks (`accept`, `enqueue_req`, `finish_request`, `set_accept_enabled`), so
pyproject.toml keeps gunicorn to the major version they were read from, shared.overrides
registers them with that range, and tests/ops/test_gunicorn_worker.py checks the behaviour
against the installed gunicorn.
"""

from __future__ import annotations

import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

# Long enough for an idle worker to wake up and accept, short against any request.
ACCEPT_PAUSE_SECONDS = 0.01


class BalancedThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gthread that defers new connections while its threads are busy (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Requests on the thread pool, queued or running, and since when the pool has been
        # full without an accept. Touched only by the worker's main thread: gthread
        # accepts, submits and finishes requests there.
        self.in_flight = 0
        self.busy_since: float | None = None

    def may_accept(self) -> bool:
        """True while a thread is free, and once per pause while none is."""
        if self.in_flight < self.cfg.threads:
            self.busy_since = None
            return True
        now = time.monotonic()
        if self.busy_since is None:
            self.busy_since = now
        return now - self.busy_since >= ACCEPT_PAUSE_SECONDS

    def set_accept_enabled(self, enabled: bool) -> None:
        """Accept only when gthread would and `may_accept` agrees."""
        super().set_accept_enabled(enabled and self.may_accept())

    def accept(self, listener: Any) -> None:
        """gthread's accept; one taken while every thread was busy starts a new pause."""
        busy = self.in_flight >= self.cfg.threads
        super().accept(listener)
        if busy:
            self.busy_since = time.monotonic()
            self._update_accepting()

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


# The dotted path gunicorn loads it by (`worker_class`, `-k`).
WORKER_CLASS = f"{__name__}.{BalancedThreadWorker.__name__}"
