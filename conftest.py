"""Root conftest: the tests run with the embedded defaults of the `test` environment, and
`make test` spreads them over xdist workers (`-n`, `--dist loadfile`), the long ones on one.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("APP_ENV", "test")

pytest_plugins = ["tests.support", "tests.support.nodes"]

# The tests that start the whole suite (or `make run`, or a broker cluster) take minutes
# each and most of a core while they start; the rest take seconds and mostly wait on a
# server. Under xdist the long ones run one after the other on one worker, started first,
# while the other workers take the rest: two of them at once would starve the two cores,
# and slow starts turn into timeouts.
WHOLE_SUITE_LANE = "the whole-suite tests: the short chaos run, then every e2e module"
SHORT_CHAOS_RUN = "chaos/tests/test_short_run.py"


def in_whole_suite_lane(path: str) -> bool:
    """Whether a test file (its path from the root) is one of the whole-suite tests."""
    return path.startswith("tests/e2e/test_") or path == SHORT_CHAOS_RUN


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The whole-suite tests first, the chaos run first of them; each file in its own order."""

    def place(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return 0 if path == SHORT_CHAOS_RUN else 1 if in_whole_suite_lane(path) else 2

    items.sort(key=place)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadfile`, except that the whole-suite tests' files go to one worker as one
    unit (the e2e modules on the shared suite among them: one suite started, not one per
    worker).

    xdist's own way to group files (the `xdist_group` mark with `--dist loadgroup`)
    rewrites a private attribute that pytest 9 no longer reads, so its groups are lost;
    this scheduler names the unit from the file names instead.
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LoadFileInOneLane(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return WHOLE_SUITE_LANE if in_whole_suite_lane(path) else path

    return LoadFileInOneLane(config, log)  # type: ignore[arg-type]
