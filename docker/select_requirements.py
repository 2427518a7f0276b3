"""Keep the requirements of an exported lock that apply to the image's Python, markers dropped.

    python docker/select_requirements.py locked.txt 3.11.2 > selected.txt

uv exports one file for every Python and platform, with environment markers; pip would
judge them by the Python that runs pip (this host's), not by the image's, whose version
can differ in the patch level that a marker such as `python_full_version < '3.11.3'`
looks at. Lines keep their hashes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.markers import Marker


def target_environment(python_version: str) -> dict[str, str]:
    """The marker variables of CPython `python_version` on Linux x86_64."""
    major_minor = ".".join(python_version.split(".")[:2])
    return {
        "implementation_name": "cpython",
        "implementation_version": python_version,
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": python_version,
        "python_version": major_minor,
        "sys_platform": "linux",
    }


def select(text: str, python_version: str) -> list[str]:
    """Each requirement of `text` whose marker holds for that Python, without the marker."""
    environment = target_environment(python_version)
    selected = []
    for entry in text.replace("\\\n", " ").splitlines():
        entry = entry.split(" #", 1)[0].strip()
        if not entry or entry.startswith("#"):
            continue
        requirement, _, options = entry.partition(" --")
        name, _, marker = requirement.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(environment):
            continue
        selected.append(f"{name.strip()} --{options}" if options else name.strip())
    return selected


def main() -> None:
    """Print the selected requirements of the file in argv[1] for the Python in argv[2]."""
    source, python_version = sys.argv[1], sys.argv[2]
    sys.stdout.write(
        "".join(f"{line}\n" for line in select(Path(source).read_text(), python_version))
    )


if __name__ == "__main__":
    main()
