"""The auth service's own settings, read from the environment on top of `common_config`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.config import ConfigError, Env

# OWASP Password Storage Cheat Sheet, argon2id floor: 19 MiB, 2 iterations, 1 lane.
OWASP_MIN_MEMORY_KIB = 19456
OWASP_MIN_TIME_COST = 2

DEFAULT_REFRESH_TOKEN_TTL = 30 * 24 * 3600


def auth_config(env: Env) -> dict[str, Any]:
    """Flask config keys of the auth service (validated later by `validate_config`)."""
    keys_dir = env.optional("AUTH_SIGNING_KEYS_DIR")
    if keys_dir is None and env.is_local:
        keys_dir = str(env.var_dir() / "keys")
    admin_email = env.optional("AUTH_BOOTSTRAP_ADMIN_EMAIL")
    issuer = env.string("JWT_ISSUER", "http://127.0.0.1:8080/api/v1/auth")
    return {
        # The issuer is auth's public address (as clients see it through the gateway).
        "AUTH_VERIFY_EMAIL_URL": env.string(
            "AUTH_VERIFY_EMAIL_URL", f"{issuer.rstrip('/')}/verify-email"
        ),
        "AUTH_EMAIL_VERIFICATION_TTL_SECONDS": env.integer(
            "AUTH_EMAIL_VERIFICATION_TTL_SECONDS", 24 * 3600
        ),
        "AUTH_SIGNING_KEYS_DIR": keys_dir,
        # Worker processes re-read the key directory this often, so a rotation needs no restart.
        "AUTH_KEYS_RELOAD_SECONDS": env.number("AUTH_KEYS_RELOAD_SECONDS", 10.0),
        "AUTH_REFRESH_TOKEN_TTL_SECONDS": env.integer(
            "AUTH_REFRESH_TOKEN_TTL_SECONDS", DEFAULT_REFRESH_TOKEN_TTL
        ),
        "AUTH_ARGON2_TIME_COST": env.integer("AUTH_ARGON2_TIME_COST", OWASP_MIN_TIME_COST),
        "AUTH_ARGON2_MEMORY_KIB": env.integer("AUTH_ARGON2_MEMORY_KIB", OWASP_MIN_MEMORY_KIB),
        "AUTH_ARGON2_PARALLELISM": env.integer("AUTH_ARGON2_PARALLELISM", 1),
        "AUTH_LOGIN_MAX_FAILURES": env.integer("AUTH_LOGIN_MAX_FAILURES", 5),
        "AUTH_LOGIN_WINDOW_SECONDS": env.integer("AUTH_LOGIN_WINDOW_SECONDS", 15 * 60),
        "AUTH_LOGIN_ACCOUNT_MAX_FAILURES": env.integer("AUTH_LOGIN_ACCOUNT_MAX_FAILURES", 20),
        "AUTH_LOGIN_ACCOUNT_DELAY_SECONDS": env.integer("AUTH_LOGIN_ACCOUNT_DELAY_SECONDS", 10),
        "AUTH_BOOTSTRAP_ADMIN_EMAIL": admin_email,
        "AUTH_BOOTSTRAP_ADMIN_PASSWORD": (
            env.string("AUTH_BOOTSTRAP_ADMIN_PASSWORD", secret=True) if admin_email else None
        ),
        "AUTH_BOOTSTRAP_ADMIN_NAME": env.string("AUTH_BOOTSTRAP_ADMIN_NAME", "Administrator"),
    }


def validate_config(config: Mapping[str, Any], *, is_local: bool) -> None:
    """Refuse settings that are missing or unsafe, after test/caller overrides are applied."""
    keys_dir = config.get("AUTH_SIGNING_KEYS_DIR")
    if not keys_dir:
        raise ConfigError("AUTH_SIGNING_KEYS_DIR must be set (a directory of PEM signing keys)")
    path = Path(keys_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"AUTH_SIGNING_KEYS_DIR {keys_dir!r} is not a directory")
    if not is_local and not path.is_dir():
        # A typo here would otherwise start a service that can sign nothing.
        raise ConfigError(f"AUTH_SIGNING_KEYS_DIR {keys_dir!r} does not exist; create it first")
    # The access-token lifetime is checked with the revocation window (shared.config).
    if int(config["AUTH_REFRESH_TOKEN_TTL_SECONDS"]) <= 0:
        raise ConfigError("AUTH_REFRESH_TOKEN_TTL_SECONDS must be positive")
    for name in (
        "AUTH_LOGIN_MAX_FAILURES",
        "AUTH_LOGIN_WINDOW_SECONDS",
        "AUTH_LOGIN_ACCOUNT_MAX_FAILURES",
        "AUTH_LOGIN_ACCOUNT_DELAY_SECONDS",
        "AUTH_EMAIL_VERIFICATION_TTL_SECONDS",
    ):
        if int(config[name]) < 1:
            raise ConfigError(f"{name} must be >= 1")
    if not is_local and (
        int(config["AUTH_ARGON2_MEMORY_KIB"]) < OWASP_MIN_MEMORY_KIB
        or int(config["AUTH_ARGON2_TIME_COST"]) < OWASP_MIN_TIME_COST
        or int(config["AUTH_ARGON2_PARALLELISM"]) < 1
    ):
        # Cheaper hashing is only for the test suite's speed, never for real passwords.
        raise ConfigError(
            "argon2 parameters are below OWASP's floor "
            f"(memory >= {OWASP_MIN_MEMORY_KIB} KiB, time cost >= {OWASP_MIN_TIME_COST})"
        )
