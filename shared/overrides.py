"""Every place the suite overrides a library's internals, with the versions each was read against.

An override of a private method (`_make_request`, `_new_conn`) or of a
worker's internal hooks keeps working only while the library keeps that method and its
parameters; nothing in the library's changelog promises it. Each override is written (and
documented) where it is used; this registry names them all in one place, with the version
range each was written for, so that an upgrade starts here: `python -m shared.overrides`
(and shared/tests/test_overrides.py) fails for any override the installed version does not
support or whose method or parameters are gone.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import platform
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Version = tuple[int, ...]


@dataclass(frozen=True)
class Override:
    """One class of a library whose internal methods the suite overrides."""

    library: str  # the distribution, or "python" for the standard library
    since: Version  # first supported version (inclusive)
    before: Version  # first version not read yet (exclusive)
    target: str  # module:Class whose methods are overridden
    members: Mapping[str, tuple[str, ...]]  # method -> the parameters the override relies on
    used_by: str  # the module that overrides them
    why: str

    @property
    def supported(self) -> str:
        """The version range, as pip writes it."""
        return f"{self.library}>={_dotted(self.since)},<{_dotted(self.before)}"


OVERRIDES: tuple[Override, ...] = (
    Override(
        library="gunicorn",
        since=(27,),
        before=(28,),
        target="gunicorn.workers.gthread:ThreadWorker",
        members={
            "accept": ("listener",),
            "enqueue_req": ("conn",),
            "finish_request": ("conn", "fs"),
            "set_accept_enabled": ("enabled",),
        },
        used_by="shared.gunicorn_worker",
        why="a busy worker leaves new connections to idle ones (gunicorn #2817, #3433)",
    ),
    Override(
        library="urllib3",
        since=(2, 2),
        before=(3,),
        target="urllib3.connectionpool:HTTPConnectionPool",
        members={"_make_request": ("conn", "method", "url")},
        used_by="gateway.proxy",
        why="the gateway forwards the query as the client sent it (urllib3 #3062)",
    ),
    Override(
        library="urllib3",
        since=(2, 2),
        before=(3,),
        target="urllib3.connection:HTTPConnection",
        members={"_new_conn": ()},
        used_by="services.notifications.ssrf",
        why="webhooks connect to the very address the SSRF guard checked",
    ),
    Override(
        library="python",
        since=(3, 11),
        before=(3, 15),
        target="smtplib:SMTP",
        # getreply reads through `self.file` (created when None), send writes through
        # `self.sock.sendall`: the override times both, and swaps in the timed reader.
        members={"send": ("s",), "getreply": (), "connect": ("host", "port", "source_address")},
        used_by="services.notifications.mail",
        why="one time limit bounds each whole send on a kept connection, not each read",
    ),
)


def _dotted(version: Version) -> str:
    return ".".join(map(str, version))


def parse_version(text: str) -> Version:
    """The release numbers of a version string ("27.0.1" -> (27, 0, 1); "2.8.0rc1" -> (2, 8, 0))."""
    release = re.match(r"\d+(?:\.\d+)*", text)
    if release is None:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in release.group().split("."))


def installed_version(library: str) -> str:
    """The installed version of a distribution, or of Python for "python"."""
    if library == "python":
        return platform.python_version()
    return importlib.metadata.version(library)


def _target(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def problems(override: Override, version: str | None = None) -> list[str]:
    """What stops `override` working with `version` (default: the installed one); [] if nothing."""
    version = installed_version(override.library) if version is None else version
    found = []
    if not override.since <= parse_version(version) < override.before:
        found.append(
            f"{override.used_by}: {override.library} {version} is not {override.supported}; "
            f"read {override.target} again ({override.why})"
        )
    owner = _target(override.target)
    for member, parameters in override.members.items():
        method = getattr(owner, member, None)
        if method is None:
            found.append(f"{override.used_by}: {override.target} has no {member} any more")
            continue
        missing = set(parameters) - set(inspect.signature(method).parameters)
        if missing:
            found.append(
                f"{override.used_by}: {override.target}.{member} lost {', '.join(sorted(missing))}"
            )
    return found


def main() -> int:
    """List the overrides and whether the installed libraries support them (exit 1 if not)."""
    status = 0
    for override in OVERRIDES:
        found = problems(override)
        status |= bool(found)
        version = installed_version(override.library)
        verdict = "ok" if not found else "UNSUPPORTED"
        sys.stdout.write(f"{verdict:12} {override.target} ({override.supported}; {version})\n")
        for problem in found:
            sys.stdout.write(f"    {problem}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
