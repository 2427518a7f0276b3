"""The whole compose stack, started once for the tests here (`make compose-test`).

`make compose-test` builds the images first: the suite's four from uv.lock on the Debian
base of docker/base/build.sh, and the local stand-ins of docker/local/ for the third-party
images. The stack runs under its own project name, publishes its edge on a free port of
127.0.0.1 only, and is torn down with its volumes whatever the tests did. Starting and
stopping it is tests/compose/stack.py's (the benchmark starts it the same way).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compose.stack import (
    ROOT,
    START_TIMEOUT,
    SUITE_IMAGES,
    Stack,
    docker,
    missing_images,
    missing_images_message,
    new_stack,
    running,
    suite_tag,
)

# What the tests import from here.
__all__ = ["ROOT", "START_TIMEOUT", "SUITE_IMAGES", "Stack", "docker", "suite_tag"]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The compose stack up and healthy; `down --volumes` afterwards."""
    tag = suite_tag()
    missing = missing_images(tag)
    if missing:
        pytest.fail(missing_images_message(missing))
    with running(new_stack(tag), timeout=START_TIMEOUT) as ready:
        print(f"compose stack up and ready in {ready.ready_seconds or 0:.0f} s")  # noqa: T201
        yield ready
