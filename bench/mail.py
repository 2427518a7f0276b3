"""Mails per CPU-second of the sending side: EmailSender against the aiosmtpd sink.

    python -m bench.mail                 # 2,000 mails
    python -m bench.mail --mails 5000

The sink runs in a process of its own (python -m services.notifications.smtp_sink), so
the CPU time measured here (this process's user + system seconds, every thread counted,
timer threads included) is the sender's alone: building each message, the SMTP dialogue,
connecting. CPU time rather than wall time, because the machine is shared: a busy
neighbour makes the run slower but barely changes what each mail costs.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from services.notifications.delivery import EmailSender

TEXT = "Hello Ada,\n\nWe received your order 1234abcd for 25.00 EUR.\n\nThank you.\n" * 3
HTML = "<p>Hello Ada,</p><p>We received your order <b>1234abcd</b> for 25.00 EUR.</p>" * 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the SMTP sink did not listen on {port}")


def run(mails: int) -> dict[str, float]:
    """Send `mails` mails through one EmailSender; CPU seconds and mails per CPU-second."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as var_dir:
        env = {**os.environ, "VAR_DIR": var_dir, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port)}
        sink = subprocess.Popen(
            [sys.executable, "-m", "services.notifications.smtp_sink"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port)
            sender = EmailSender(
                host="127.0.0.1",
                port=port,
                sender="Flask Suite <no-reply@flask-suite.local>",
                timeout=10.0,
            )
            # A few to warm up (imports, the first connection), not measured.
            for i in range(20):
                sender.send(
                    delivery_id=f"warm-{i}",
                    to="ada@example.com",
                    subject="Warm",
                    text=TEXT,
                    html=HTML,
                )
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(mails):
                sender.send(
                    delivery_id=f"bench-{i}",
                    to="ada@example.com",
                    subject=f"We received your order {i:08x}",
                    text=TEXT,
                    html=HTML,
                )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            close = getattr(sender, "close", None)
            if close is not None:
                close()
            stored = _wait_stored(Path(var_dir) / "mail", mails + 20)
        finally:
            sink.terminate()
            sink.wait(timeout=10)
    return {
        "mails": mails,
        "stored": stored,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "mails_per_cpu_second": mails / cpu,
        "cpu_ms_per_mail": 1000 * cpu / mails,
    }


def _wait_stored(directory: Path, expected: int, timeout: float = 30.0) -> int:
    ends = time.monotonic() + timeout
    count = 0
    while time.monotonic() < ends:
        count = len(list(directory.glob("*.eml"))) if directory.exists() else 0
        if count >= expected:
            break
        time.sleep(0.1)
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    args = parser.parse_args()
    result = run(args.mails)
    sys.stdout.write(
        f"{result['mails']:.0f} mails ({result['stored']:.0f} stored by the sink): "
        f"{result['cpu_seconds']:.2f} CPU s, {result['wall_seconds']:.2f} wall s; "
        f"{result['mails_per_cpu_second']:.0f} mails per CPU-second "
        f"({result['cpu_ms_per_mail']:.3f} CPU ms per mail)\n"
    )
    return 0 if result["stored"] >= result["mails"] else 1


if __name__ == "__main__":
    sys.exit(main())
