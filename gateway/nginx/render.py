"""Render the edge template: `python -m gateway.nginx.render [OUTPUT]` (values from the env).

The same `${NAME}` syntax envsubst uses, so the nginx image can render the template
itself; unlike plain envsubst this refuses to leave any placeholder unfilled. The edge's
rate limits come from the gateway's own settings (`GATEWAY_RATE_LIMIT_IP`/`_USER`, or
their defaults) unless the EDGE_* values are given; `python -m gateway.nginx.render
--limits` prints those values, for an nginx that renders the template with envsubst.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from gateway.config import DEFAULT_RATE_LIMIT_IP, DEFAULT_RATE_LIMIT_USER
from gateway.ratelimit import Limit, parse_limits

TEMPLATE = Path(__file__).with_name("default.conf.template")
# Upper-case names only: nginx's own variables ($host, ${edge_user_id}) are lower case.
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


# `proxy_set_header Name $http_name;`: a client header passed on unchanged.
CLIENT_HEADER = re.compile(r"^\s*proxy_set_header\s+([A-Za-z0-9-]+)\s+\$http_([a-z0-9_]+);", re.M)


def fast_path_client_headers(template: str | None = None) -> set[str]:
    """The client headers (lower case) the template's fast path to the services passes on.

    The fast path is the `location` that names `edge_service`. ValueError when a line
    passes one header on under another's name (`X-User-Id $http_x_uid`).
    """
    text = TEMPLATE.read_text() if template is None else template
    start = text.index("(?<edge_service>")
    block = text[start : text.index("\n    }\n", start)]
    names = set()
    for name, variable in CLIENT_HEADER.findall(block):
        if name.lower().replace("-", "_") != variable:
            raise ValueError(f"the edge sends $http_{variable} as {name}")
        names.add(name.lower())
    return names


def placeholders(template: str | None = None) -> set[str]:
    """The names a template needs."""
    return set(PLACEHOLDER.findall(TEMPLATE.read_text() if template is None else template))


def _per_minute(limit: Limit) -> int:
    # nginx takes whole requests per second or minute; rounding up never refuses a request
    # the gateway would let through.
    return max(1, math.ceil(limit.amount * 60_000 / limit.window_ms))


def _leaky_bucket(setting: str) -> tuple[int, int]:
    """(requests per minute, burst) of the slowest limit of a gateway setting.

    nginx gives a zone one rate; of several limits (`10/second;600/minute`), the edge takes
    the one with the lowest long-run rate, its size as the burst.
    """
    slowest = min(parse_limits("edge", setting), key=lambda lim: lim.amount / lim.window_ms)
    return _per_minute(slowest), slowest.amount - 1


def edge_limit_values(settings: Mapping[str, str]) -> dict[str, str]:
    """The EDGE_* rate-limit values for the gateway limits in `settings` (else defaults)."""
    ip_rate, ip_burst = _leaky_bucket(settings.get("GATEWAY_RATE_LIMIT_IP", DEFAULT_RATE_LIMIT_IP))
    caller_rate, caller_burst = _leaky_bucket(
        settings.get("GATEWAY_RATE_LIMIT_USER", DEFAULT_RATE_LIMIT_USER)
    )
    # nginx cannot say which zone refused: the longer wait holds for both.
    retry_after = max(1, math.ceil(60 / ip_rate), math.ceil(60 / caller_rate))
    return {
        "EDGE_IP_RATE": f"{ip_rate}r/m",
        "EDGE_IP_BURST": str(ip_burst),
        "EDGE_CALLER_RATE": f"{caller_rate}r/m",
        "EDGE_CALLER_BURST": str(caller_burst),
        "EDGE_RETRY_AFTER": str(retry_after),
    }


def render(values: Mapping[str, str], template: str | None = None) -> str:
    """The template with every placeholder filled; KeyError names the missing ones."""
    text = TEMPLATE.read_text() if template is None else template
    values = {**edge_limit_values(values), **values}
    missing = sorted(placeholders(text) - set(values))
    if missing:
        raise KeyError(f"edge template needs: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


# The main context the nginx image (or a distribution) normally provides, for running the
# edge as a plain process in a directory of its own (the tests and the benchmark do).
STANDALONE_MAIN = """
{user}
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log combined buffer=64k flush=1s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/edge.conf;
}}
"""


def standalone_main(prefix: Path, *, workers: int = 1) -> str:
    """nginx.conf for an edge whose files all live under `prefix` (edge.conf included)."""
    # As root, nginx hands its workers to `nobody`, who cannot enter a private temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    return STANDALONE_MAIN.format(prefix=prefix, user=user, workers=workers)


def main(argv: list[str]) -> int:
    """Render with values from the environment to a file or stdout (or print the limits)."""
    if argv[1:] == ["--limits"]:
        for name, value in edge_limit_values(os.environ).items():
            sys.stdout.write(f"{name}={value}\n")
        return 0
    try:
        text = render(os.environ)
    except KeyError as exc:
        sys.stderr.write(f"{exc.args[0]}\n")
        return 2
    if len(argv) > 1:
        Path(argv[1]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
