"""Named crash points: the fault suite kills a process exactly where a crash hurts most.

`FAULT_POINTS=relay.after_publish` (a comma-separated list) makes the process SIGKILL
itself when it reaches that point, with no cleanup, no flush and no goodbye to the broker,
just as the OOM killer or a pulled plug would. The points sit where at-least-once delivery
with exactly-once effect is decided:

* `relay.after_publish`: the broker confirmed a batch, the rows are not yet marked sent;
* `consumer.after_commit`: the handler's transaction (with its inbox row) committed, the
  message is not yet acknowledged;
* `delivery.after_send`: an email or webhook went out, its delivery is not yet recorded.

Only the local run and the tests may arm them: at start-up, any other APP_ENV with
FAULT_POINTS set is refused, and so is a name that is not a point.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping

from shared.config import ConfigError

log = logging.getLogger(__name__)

RELAY_AFTER_PUBLISH = "relay.after_publish"
CONSUMER_AFTER_COMMIT = "consumer.after_commit"
DELIVERY_AFTER_SEND = "delivery.after_send"
CRASH_POINTS = frozenset({RELAY_AFTER_PUBLISH, CONSUMER_AFTER_COMMIT, DELIVERY_AFTER_SEND})

_ENV_NAME = "FAULT_POINTS"
_LOCAL_ENVS = frozenset({"local", "test"})


def armed_points(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The crash points FAULT_POINTS arms; refuses them outside the local run and tests."""
    environ = os.environ if environ is None else environ
    names = frozenset(
        name.strip() for name in environ.get(_ENV_NAME, "").split(",") if name.strip()
    )
    if not names:
        return names
    app_env = environ.get("APP_ENV", "production").strip().lower() or "production"
    if app_env not in _LOCAL_ENVS:
        raise ConfigError(f"{_ENV_NAME} is for tests; it may not be set with APP_ENV={app_env}")
    unknown = sorted(names - CRASH_POINTS)
    if unknown:
        raise ConfigError(
            f"{_ENV_NAME} names unknown points {unknown}; known: {sorted(CRASH_POINTS)}"
        )
    return names


def crash_point(name: str) -> None:
    """Die here, at once, when FAULT_POINTS arms `name`; do nothing otherwise."""
    # Read each time (one dict lookup when unset): tests arm a process through its
    # environment, and a long-lived cache would outlive a test's monkeypatch.
    if _ENV_NAME not in os.environ or name not in armed_points():
        return
    log.warning("crash point reached; killing the process", extra={"crash_point": name})
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
