"""A wall-clock limit on one whole exchange with a remote server (a webhook POST, an email).

Socket timeouts (requests', urllib3's, smtplib's) bound each read and write, not the
exchange: a server that sends one header line per second never trips them and can keep a
delivery loop busy forever. No client library we use offers a total limit, so this one is
written by hand: every socket opened under a `Deadline` is watched, and when the time is
up a timer thread shuts it down, which makes the blocked read or write in the sending
thread return at once (as a connection error). Shutting down works through TLS too: it
acts on a duplicate of the descriptor, which stays valid after `ssl` wraps the socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class DeadlineExceeded(TimeoutError):
    """The exchange ran out of time before it could go on."""


class Deadline:
    """Shuts every socket it watches once `seconds` have passed since it was entered."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("a deadline needs a positive number of seconds")
        self.seconds = seconds
        self._ends_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._ends_at = time.monotonic() + self.seconds
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        with self._lock:
            watched, self._watched = self._watched, []
        for duplicate in watched:
            duplicate.close()

    @property
    def expired(self) -> bool:
        """True once the time ran out and the watched sockets were shut."""
        return self._expired

    def remaining(self) -> float:
        """Seconds left; DeadlineExceeded (and every socket shut) when none are."""
        left = self._ends_at - time.monotonic()
        if left <= 0 or self._expired:
            self.expire()
            raise DeadlineExceeded(f"no time left of {self.seconds:g} s")
        return left

    def bound(self, timeout: object) -> float:
        """A socket timeout no longer than the time left (None or a default means: that)."""
        left = self.remaining()
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            return min(float(timeout), left)
        return left

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down when the time runs out (at once if it already has)."""
        duplicate = sock.dup()
        with self._lock:
            if not self._expired:
                self._watched.append(duplicate)
                return
        _shut(duplicate)
        duplicate.close()
        raise DeadlineExceeded(f"no time left of {self.seconds:g} s")

    def expire(self) -> None:
        """End the exchange now: every watched socket is shut down for reading and writing."""
        with self._lock:
            self._expired = True
            watched = list(self._watched)
        for duplicate in watched:
            _shut(duplicate)


def _shut(sock: socket.socket) -> None:
    # shutdown (not close) acts on the connection itself, so the sending thread's own
    # descriptor sees end-of-file or an error right away; it may already be gone.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
