"""Render the edge template: `python -m gateway.nginx.render [OUTPUT]` (values from the env).

The same `${NAME}` syntax envsubst uses, so the nginx image can render the template
itself; unlike plain envsubst this refuses to leave any placeholder unfilled.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

TEMPLATE = Path(__file__).with_name("default.conf.template")
# Upper-case names only: nginx's own variables ($host, ${edge_user_id}) are lower case.
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def placeholders(template: str | None = None) -> set[str]:
    """The names a template needs."""
    return set(PLACEHOLDER.findall(TEMPLATE.read_text() if template is None else template))


def render(values: Mapping[str, str], template: str | None = None) -> str:
    """The template with every placeholder filled; KeyError names the missing ones."""
    text = TEMPLATE.read_text() if template is None else template
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
    """Render with values from the environment to a file or stdout."""
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
