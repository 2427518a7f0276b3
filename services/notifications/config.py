"""The notifications service's own settings, read from the environment on top of `common_config`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.config import ConfigError, Env


def notifications_config(env: Env) -> dict[str, Any]:
    """Flask config keys of the notifications service (validated later by `validate_config`)."""
    return {
        # The local sink (`python -m services.notifications.smtp_sink`) listens here by default.
        "SMTP_HOST": env.string("SMTP_HOST", "127.0.0.1"),
        "SMTP_PORT": env.integer("SMTP_PORT", 1025),
        "SMTP_FROM": env.string("SMTP_FROM", "Flask Suite <no-reply@flask-suite.local>"),
        "SMTP_USERNAME": env.optional("SMTP_USERNAME"),
        # A secret when given: outside the local run a placeholder is refused at start-up.
        "SMTP_PASSWORD": (
            env.string("SMTP_PASSWORD", secret=True) if env.optional("SMTP_PASSWORD") else None
        ),
        "SMTP_STARTTLS": env.flag("SMTP_STARTTLS", False),
        # The longest one email may take, connect to the server's answer to the message.
        "SMTP_TIMEOUT_SECONDS": env.number("SMTP_TIMEOUT_SECONDS", 30.0),
        "NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE": env.flag("NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE"),
        # The longest one webhook delivery may take: DNS, connect, TLS, request, answer.
        "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS": env.number(
            "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS", 5.0
        ),
        "NOTIFICATIONS_MAX_WEBHOOKS_PER_USER": env.integer(
            "NOTIFICATIONS_MAX_WEBHOOKS_PER_USER", 10
        ),
        # A webhook endpoint whose every attempt failed for this long is disabled, and its
        # owner told in the app; `recover` enables it again and sends what it missed.
        "NOTIFICATIONS_WEBHOOK_DISABLE_AFTER_SECONDS": env.number(
            "NOTIFICATIONS_WEBHOOK_DISABLE_AFTER_SECONDS", 5 * 24 * 3600.0
        ),
        # The attempt log of every endpoint keeps this long; the consume worker purges
        # older attempts every INBOX_PURGE_INTERVAL_SECONDS.
        "NOTIFICATIONS_WEBHOOK_ATTEMPT_RETENTION_SECONDS": env.number(
            "NOTIFICATIONS_WEBHOOK_ATTEMPT_RETENTION_SECONDS", 30 * 24 * 3600.0
        ),
        # Finished deliveries (sent, failed, cancelled; each keeps its whole rendered mail or
        # webhook body) keep this long after their outcome, notifications this long after
        # they were made; the consume worker deletes older ones every
        # INBOX_PURGE_INTERVAL_SECONDS. A pending delivery is never deleted, and a
        # notification only once no delivery refers to it any more.
        "DELIVERY_RETENTION_SECONDS": env.number("DELIVERY_RETENTION_SECONDS", 30 * 24 * 3600.0),
        "NOTIFICATION_RETENTION_SECONDS": env.number(
            "NOTIFICATION_RETENTION_SECONDS", 365 * 24 * 3600.0
        ),
        # Retries back off exponentially: after failed attempt n a delivery waits between
        # half and all of min(cap, base * 2^(n-1)). With 40 attempts, 30 s and 1 h that is
        # 30 s, 1 min, 2 min ... 32 min, then about an hour each time: a delivery is given
        # up no sooner than 16.5 h after its first failure (33 h at most, ~25 h typically),
        # so an outage of the SMTP server or a webhook of hours delays mail and loses none.
        "NOTIFICATIONS_MAX_ATTEMPTS": env.integer("NOTIFICATIONS_MAX_ATTEMPTS", 40),
        "NOTIFICATIONS_BACKOFF_BASE_SECONDS": env.number(
            "NOTIFICATIONS_BACKOFF_BASE_SECONDS", 30.0
        ),
        "NOTIFICATIONS_BACKOFF_CAP_SECONDS": env.number(
            "NOTIFICATIONS_BACKOFF_CAP_SECONDS", 3600.0
        ),
        # A claimed delivery is invisible to other workers this long. It is renewed right
        # before its send, so it has to outlast one send (at least twice the longer of the
        # two timeouts above); a worker that died frees its deliveries after this long.
        "NOTIFICATIONS_DELIVERY_LEASE_SECONDS": env.number(
            "NOTIFICATIONS_DELIVERY_LEASE_SECONDS", 120.0
        ),
        "NOTIFICATIONS_DELIVERY_BATCH_SIZE": env.integer("NOTIFICATIONS_DELIVERY_BATCH_SIZE", 10),
        "NOTIFICATIONS_DELIVERY_POLL_SECONDS": env.number(
            "NOTIFICATIONS_DELIVERY_POLL_SECONDS", 1.0
        ),
        # Sending waits on SMTP servers and webhook receivers, not on the CPU: several loops
        # per process, so that one slow receiver (up to its timeout) holds up one loop only.
        "NOTIFICATIONS_DELIVERY_THREADS": env.integer("NOTIFICATIONS_DELIVERY_THREADS", 4),
    }


def validate_config(config: Mapping[str, Any]) -> None:
    """Refuse settings that are missing or unusable, after test/caller overrides are applied."""
    for name in (
        "NOTIFICATIONS_MAX_ATTEMPTS",
        "NOTIFICATIONS_DELIVERY_BATCH_SIZE",
        "NOTIFICATIONS_DELIVERY_THREADS",
        "NOTIFICATIONS_MAX_WEBHOOKS_PER_USER",
    ):
        if int(config[name]) < 1:
            raise ConfigError(f"{name} must be >= 1")
    for name in (
        "NOTIFICATIONS_BACKOFF_BASE_SECONDS",
        "NOTIFICATIONS_BACKOFF_CAP_SECONDS",
        "NOTIFICATIONS_DELIVERY_LEASE_SECONDS",
        "NOTIFICATIONS_DELIVERY_POLL_SECONDS",
        "NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS",
        "NOTIFICATIONS_WEBHOOK_DISABLE_AFTER_SECONDS",
        "NOTIFICATIONS_WEBHOOK_ATTEMPT_RETENTION_SECONDS",
        "DELIVERY_RETENTION_SECONDS",
        "NOTIFICATION_RETENTION_SECONDS",
        "SMTP_TIMEOUT_SECONDS",
    ):
        if float(config[name]) <= 0:
            raise ConfigError(f"{name} must be positive")
    if float(config["NOTIFICATIONS_BACKOFF_CAP_SECONDS"]) < float(
        config["NOTIFICATIONS_BACKOFF_BASE_SECONDS"]
    ):
        raise ConfigError("NOTIFICATIONS_BACKOFF_CAP_SECONDS must be >= the base")
    longest_send = max(
        float(config["SMTP_TIMEOUT_SECONDS"]),
        float(config["NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS"]),
    )
    if float(config["NOTIFICATIONS_DELIVERY_LEASE_SECONDS"]) < 2 * longest_send:
        # Otherwise a send could still run when its lease ends and another worker resends it.
        raise ConfigError(
            "NOTIFICATIONS_DELIVERY_LEASE_SECONDS must be at least twice the longer of "
            "SMTP_TIMEOUT_SECONDS and NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS"
        )
    if bool(config.get("SMTP_USERNAME")) != bool(config.get("SMTP_PASSWORD")):
        raise ConfigError("set both SMTP_USERNAME and SMTP_PASSWORD, or neither")
