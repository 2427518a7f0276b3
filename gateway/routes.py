"""The route table: which upstream serves a path, and which requests need no token."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.config import ConfigError

SAFE_METHODS_OF = {"GET": ("GET", "HEAD")}


@dataclass(frozen=True)
class Route:
    """Requests whose path starts with `prefix` (at a segment boundary) go to `url`."""

    prefix: str
    upstream: str
    url: str
    rewrite: str | None = None

    def matches(self, path: str) -> bool:
        """True when `path` is the prefix itself or lies below it."""
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")

    def upstream_path(self, path: str) -> str:
        """The path to request upstream (the prefix swapped for `rewrite` when set)."""
        if self.rewrite is None:
            return path
        return self.rewrite + path[len(self.prefix) :]


@dataclass(frozen=True)
class Match:
    """A request resolved against the table."""

    route: Route
    path: str
    public: bool


class RouteTable:
    """Longest-prefix match over the configured routes, plus the public-request allowlist."""

    def __init__(self, routes: Iterable[Route], public: Iterable[tuple[str, str]]) -> None:
        self.routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)
        self.public = frozenset(public)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RouteTable:
        """Build the table from `GATEWAY_ROUTES` and `GATEWAY_PUBLIC_ROUTES`."""
        routes = []
        for entry in config["GATEWAY_ROUTES"]:
            prefix = str(entry["prefix"])
            if not prefix.startswith("/"):
                raise ConfigError(f"route prefix {prefix!r} must start with '/'")
            routes.append(
                Route(
                    prefix=prefix,
                    upstream=str(entry["upstream"]),
                    url=str(entry["url"]).rstrip("/"),
                    rewrite=entry.get("rewrite"),
                )
            )
        public: list[tuple[str, str]] = []
        for item in config["GATEWAY_PUBLIC_ROUTES"]:
            method, _, path = str(item).partition(" ")
            if not path.startswith("/"):
                raise ConfigError(f"public route {item!r} must read 'METHOD /path'")
            for allowed in SAFE_METHODS_OF.get(method.upper(), (method.upper(),)):
                public.append((allowed, path))
        return cls(routes, public)

    def match(self, method: str, path: str) -> Match | None:
        """The route serving `path`, or None when no upstream owns it."""
        if _has_dot_segment(path):
            # Upstreams do not normalise `..`; refusing it keeps routing and the public
            # allowlist reasoning about the same path the service will see.
            return None
        # OPTIONS (which methods a path has) tells no more than /openapi.json publishes.
        public = method == "OPTIONS" or (method, path) in self.public
        for route in self.routes:
            if route.matches(path):
                return Match(route=route, path=path, public=public)
        return None

    def upstreams(self) -> dict[str, str]:
        """Upstream name -> base URL, one entry per service."""
        return {route.upstream: route.url for route in reversed(self.routes)}


def _has_dot_segment(path: str) -> bool:
    return any(segment in (".", "..") for segment in path.split("/"))
