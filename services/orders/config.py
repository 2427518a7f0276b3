"""The orders service's own settings, read from the environment on top of `common_config`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.config import ConfigError, Env

DAY = 24 * 3600


def orders_config(env: Env) -> dict[str, Any]:
    """Flask config keys of the orders service (checked later by `validate_config`)."""
    return {
        # How long a client may retry a create with the same Idempotency-Key and get the
        # first answer back; older keys are forgotten and purged by the relay process.
        "ORDERS_IDEMPOTENCY_TTL_SECONDS": env.integer("ORDERS_IDEMPOTENCY_TTL_SECONDS", DAY),
        # Published outbox rows are kept this long (for inspection), then purged.
        "ORDERS_OUTBOX_RETENTION_SECONDS": env.integer("ORDERS_OUTBOX_RETENTION_SECONDS", 7 * DAY),
        "ORDERS_PURGE_INTERVAL_SECONDS": env.number("ORDERS_PURGE_INTERVAL_SECONDS", 600.0),
    }


def validate_config(config: Mapping[str, Any]) -> None:
    """Refuse unusable settings after test/caller overrides are applied."""
    for name in (
        "ORDERS_IDEMPOTENCY_TTL_SECONDS",
        "ORDERS_OUTBOX_RETENTION_SECONDS",
        "ORDERS_PURGE_INTERVAL_SECONDS",
    ):
        if float(config[name]) <= 0:
            raise ConfigError(f"{name} must be positive")
