"""Container health check: `python healthcheck.py [PORT]` exits 0 when /healthz answers 200.

The port is the argument, else HEALTHCHECK_PORT (workers point it at METRICS_PORT), else
the service's own `<SERVICE>_PORT`. Python rather than curl: the slim image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from shared.config import DEFAULT_PORTS


def health_port(argv: Sequence[str], environ: dict[str, str]) -> int:
    """The port to probe, from the argument or the environment."""
    if argv:
        return int(argv[0])
    if environ.get("HEALTHCHECK_PORT"):
        return int(environ["HEALTHCHECK_PORT"])
    service = environ.get("SERVICE_NAME", "")
    return int(environ.get(f"{service.upper()}_PORT") or DEFAULT_PORTS.get(service, 8000))


def main(argv: Sequence[str] | None = None) -> int:
    """Probe /healthz on 127.0.0.1; 0 when healthy, 1 otherwise."""
    port = health_port(sys.argv[1:] if argv is None else argv, dict(os.environ))
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT", 2))):
            return 0
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"healthcheck: {url}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
