"""Typed configuration from the environment, one name per setting across the suite.

`APP_ENV` is `local` (what `make run` sets), `test`, or anything else, which counts as
production: there every secret must be given and may not be a placeholder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MIB = 1024 * 1024
LOCAL_ENVS = frozenset({"local", "test"})
PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "password", "example", "todo", "xxx"}
)

DEFAULT_PORTS = {"gateway": 8080, "auth": 8001, "orders": 8002, "notifications": 8003}

# One setting decides how long an access token lives: auth issues tokens for that long,
# every verifier refuses a longer-lived one, and the gateway keeps a revocation at least
# that long plus the verifiers' clock leeway (by default with a margin for clock drift).
DEFAULT_ACCESS_TOKEN_TTL = 15 * 60
TOKEN_LEEWAY_SECONDS = 30
REVOCATION_MARGIN_SECONDS = 90


class ConfigError(RuntimeError):
    """A setting is missing or unusable; raised at start-up, never mid-request."""


class Env:
    """Reads settings from a mapping (the process environment unless one is given)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.app_env = self.environ.get("APP_ENV", "production").strip().lower() or "production"

    @property
    def is_local(self) -> bool:
        """True for `make run` and the tests, where embedded defaults are allowed."""
        return self.app_env in LOCAL_ENVS

    def string(self, name: str, default: str | None = None, *, secret: bool = False) -> str:
        """A string setting; a secret has no default outside the local run."""
        value = self.environ.get(name)
        if value is None or value == "":
            if default is None or (secret and not self.is_local):
                raise ConfigError(f"{name} must be set")
            return default
        if secret and not self.is_local and value.strip().lower() in PLACEHOLDERS:
            raise ConfigError(f"{name} holds a placeholder value; set a real secret")
        return value

    def optional(self, name: str) -> str | None:
        """A setting that may be absent."""
        value = self.environ.get(name)
        return value if value else None

    def integer(self, name: str, default: int) -> int:
        """An integer setting."""
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, not {raw!r}") from None

    def number(self, name: str, default: float) -> float:
        """A float setting."""
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {raw!r}") from None

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean setting: 1/true/yes/on or 0/false/no/off."""
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be a boolean, not {raw!r}")

    def var_dir(self) -> Path:
        """Where `make run` keeps SQLite files, keys and mail (`VAR_DIR`, default ./var)."""
        return Path(self.environ.get("VAR_DIR") or "var").resolve()

    def database_url(self, service: str) -> str:
        """`<SERVICE>_DATABASE_URL`; a SQLite file under var/ in the local run only."""
        name = f"{service.upper()}_DATABASE_URL"
        default = f"sqlite:///{self.var_dir() / (service + '.db')}" if self.is_local else None
        url = self.string(name, default)
        self._refuse_placeholder_password(name, url)
        return url

    def amqp_url(self) -> str:
        """`AMQP_URL`; the local broker's guest account in the local run only."""
        default = "amqp://guest:guest@127.0.0.1:5672/%2F" if self.is_local else None
        url = self.string("AMQP_URL", default)
        self._refuse_placeholder_password("AMQP_URL", url)
        if not self.is_local and urlsplit(url).password == "guest":
            raise ConfigError("AMQP_URL uses the guest account; give the suite its own user")
        return url

    def _refuse_placeholder_password(self, name: str, url: str) -> None:
        if self.is_local:
            return
        password = urlsplit(url).password
        if password is not None and password.strip().lower() in PLACEHOLDERS:
            raise ConfigError(f"{name} holds a placeholder password")

    def port(self, service: str) -> int:
        """`<SERVICE>_PORT` with the suite's default ports."""
        return self.integer(f"{service.upper()}_PORT", DEFAULT_PORTS[service])


def common_config(service: str, env: Env | None = None) -> dict[str, Any]:
    """Flask config every service shares; the service adds its own keys on top."""
    env = env or Env()
    from shared.faults import armed_points  # imports this module

    # First: a production process armed to kill itself must not start, whatever else is set.
    fault_points = sorted(armed_points(env.environ))
    inbox_retention = env.integer("INBOX_RETENTION_SECONDS", 30 * 24 * 3600)
    if inbox_retention <= 0:
        raise ConfigError("INBOX_RETENTION_SECONDS must be positive")
    auth_url = env.string("AUTH_URL", f"http://127.0.0.1:{env.port('auth')}")
    return {
        "APP_ENV": env.app_env,
        "SERVICE_NAME": service,
        "SQLALCHEMY_DATABASE_URI": env.database_url(service) if service != "gateway" else None,
        "AMQP_URL": env.amqp_url(),
        "REDIS_URL": env.optional("REDIS_URL"),
        # A dependency that stops answering costs a request these, then a 503.
        "DATABASE_CONNECT_TIMEOUT_SECONDS": env.number("DATABASE_CONNECT_TIMEOUT_SECONDS", 5.0),
        "DATABASE_STATEMENT_TIMEOUT_SECONDS": env.number(
            "DATABASE_STATEMENT_TIMEOUT_SECONDS", 15.0
        ),
        "REDIS_TIMEOUT_SECONDS": env.number("REDIS_TIMEOUT_SECONDS", 1.0),
        "MAX_CONTENT_LENGTH": MIB,
        "JWT_ISSUER": env.string("JWT_ISSUER", "http://127.0.0.1:8080/api/v1/auth"),
        "JWT_AUDIENCE": env.string("JWT_AUDIENCE", "flask-suite"),
        # Where services fetch the public keys; auth serves them itself.
        "JWKS_URL": env.string("JWKS_URL", f"{auth_url}/api/v1/auth/jwks.json"),
        "JWKS_MIN_REFETCH_SECONDS": env.number("JWKS_MIN_REFETCH_SECONDS", 10.0),
        "EVENT_RETRY_DELAYS": [
            float(x) for x in env.string("EVENT_RETRY_DELAYS", "1,5,30").split(",") if x
        ],
        "EVENT_DELIVERY_LIMIT": env.integer("EVENT_DELIVERY_LIMIT", 5),
        "VAR_DIR": str(env.var_dir()),
        "FAULT_POINTS": fault_points,
        # An inbox row must outlive every redelivery of its event (minutes): days is far beyond.
        "INBOX_RETENTION_SECONDS": inbox_retention,
        "INBOX_PURGE_INTERVAL_SECONDS": env.number("INBOX_PURGE_INTERVAL_SECONDS", 600.0),
        **token_lifetime_config(env),
    }


def token_lifetime_config(env: Env) -> dict[str, Any]:
    """The access-token lifetime and the revocation window, the latter derived by default."""
    ttl = env.integer("AUTH_ACCESS_TOKEN_TTL_SECONDS", DEFAULT_ACCESS_TOKEN_TTL)
    return {
        "AUTH_ACCESS_TOKEN_TTL_SECONDS": ttl,
        "GATEWAY_REVOCATION_TTL_SECONDS": env.integer(
            "GATEWAY_REVOCATION_TTL_SECONDS",
            ttl + TOKEN_LEEWAY_SECONDS + REVOCATION_MARGIN_SECONDS,
        ),
    }


def validate_token_lifetimes(config: Mapping[str, Any]) -> None:
    """Refuse a token lifetime that would outlive the gateway's memory of a revocation.

    With a 24 h token and a 17 min revocation window, a deactivated user would be let
    back in after 17 minutes, for the rest of the day.
    """
    ttl = int(config["AUTH_ACCESS_TOKEN_TTL_SECONDS"])
    if ttl <= 0:
        raise ConfigError("AUTH_ACCESS_TOKEN_TTL_SECONDS must be positive")
    revocation = int(config["GATEWAY_REVOCATION_TTL_SECONDS"])
    needed = ttl + TOKEN_LEEWAY_SECONDS
    if revocation < needed:
        raise ConfigError(
            f"GATEWAY_REVOCATION_TTL_SECONDS={revocation} is shorter than an access token's"
            f" lifetime (AUTH_ACCESS_TOKEN_TTL_SECONDS={ttl}) plus {TOKEN_LEEWAY_SECONDS} s of"
            f" leeway: a revoked token would work again. Set it to at least {needed}, or"
            " leave it unset to derive it from the token lifetime."
        )
