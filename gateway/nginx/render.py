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
