"""The nginx edge for the benchmark: the gateway's template, rendered and run for real."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support import free_port

if TYPE_CHECKING:
    from bench.suite import Suite

# The main context a distribution (or the nginx image) normally provides around the
# template's http-level snippet. One worker: two cores are shared with everything else.


class EdgeUnavailable(RuntimeError):
    """nginx or the gateway's edge template is missing; the edge column is not run."""


def nginx_binary() -> str:
    """Path of nginx; EdgeUnavailable with the install hint when absent."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if path is None:
        raise EdgeUnavailable("nginx is not installed (apt-get install -y nginx-light)")
    return path


class Edge:
    """nginx in front of the gateway, orders and notifications, on a port of its own."""

    def __init__(
        self,
        prefix: Path,
        *,
        port: int,
        gateway: str,
        orders: str,
        notifications: str,
        workers: int = 1,
        gateway_env: Mapping[str, str] | None = None,
    ) -> None:
        self.prefix = prefix
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.binary = nginx_binary()
        try:
            from gateway.nginx.render import render, standalone_main
        except ImportError as exc:
            raise EdgeUnavailable(f"the gateway's edge template is not there yet ({exc})") from None
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "edge.conf").write_text(
            render(
                {
                    "GATEWAY_UPSTREAM": gateway,
                    "ORDERS_UPSTREAM": orders,
                    "NOTIFICATIONS_UPSTREAM": notifications,
                    "EDGE_LISTEN": f"127.0.0.1:{port}",
                    "EDGE_CACHE_DIR": str(prefix / "cache"),
                    # The edge limits at the gateway's rates: the benchmark's, not the defaults.
                    **{
                        name: value
                        for name, value in (gateway_env or {}).items()
                        if name.startswith("GATEWAY_RATE_LIMIT_")
                    },
                }
            )
        )
        (prefix / "nginx.conf").write_text(standalone_main(prefix, workers=workers))

    @classmethod
    def for_suite(cls, suite: Suite, prefix: Path) -> Edge:
        """The edge in front of a running bench suite, on a free port, at its rate limits."""

        def upstream(name: str) -> str:
            return f"127.0.0.1:{suite.ports[name]}"

        return cls(
            prefix,
            port=free_port(),
            gateway=upstream("gateway"),
            orders=upstream("orders"),
            notifications=upstream("notifications"),
            gateway_env=suite.env,
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start nginx and wait until it listens."""
        conf = str(self.prefix / "nginx.conf")
        check = subprocess.run(
            [self.binary, "-t", "-p", str(self.prefix), "-c", conf], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise EdgeUnavailable(f"nginx refused the rendered edge config: {check.stderr[-1500:]}")
        self.process = subprocess.Popen(
            [self.binary, "-p", str(self.prefix), "-c", conf],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EdgeUnavailable(f"nginx exited: {self.error_log()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise EdgeUnavailable("nginx did not listen in time")

    def stop(self) -> None:
        """Quit nginx (graceful), kill it if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def error_log(self) -> str:
        """The tail of nginx's error log."""
        try:
            return (self.prefix / "error.log").read_text()[-2000:]
        except OSError:
            return "(no error log)"
