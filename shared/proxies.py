"""Which peers may tell a service who the client is (X-Forwarded-For/-Proto).

werkzeug's ProxyFix believes the last N forwarded hops of every request. That is right
only when every request comes through those N proxies: a caller that reaches a service
directly could otherwise choose its own address, for instance a new one per login
attempt to escape the login throttle. So ProxyFix is applied only to requests whose
direct peer is one of the configured proxies (`TRUSTED_PROXIES`); any other caller is
known by the address it connects from.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

from shared.config import ConfigError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], set[Address]]


def resolve(host: str) -> set[Address]:
    """Every address `host` resolves to now (empty while it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return set()
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


def _address(value: str | None) -> Address | None:
    try:
        address = ipaddress.ip_address((value or "").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """Addresses, networks (CIDR) and host names of the proxies in front of this process.

    Host names are for compose, where the gateway's address is known only by its service
    name and only once it runs: they are resolved when a peer is not otherwise trusted, at
    most once per `refresh_seconds`, so a stream of direct callers costs no DNS traffic.
    """

    def __init__(
        self,
        entries: Iterable[str],
        *,
        resolver: Resolver = resolve,
        refresh_seconds: float = 10.0,
    ) -> None:
        self.networks: list[Network] = []
        self.hosts: list[str] = []
        for entry in (item.strip() for item in entries):
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if not all(char.isalnum() or char in "-._" for char in entry):
                    raise ConfigError(f"TRUSTED_PROXIES entry {entry!r} is no address") from None
                self.hosts.append(entry)
        self._resolver = resolver
        self._refresh_seconds = refresh_seconds
        self._resolved: set[Address] = set()
        self._resolved_at = float("-inf")
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.networks or self.hosts)

    def trusts(self, peer: str | None) -> bool:
        """Whether the direct peer `peer` (REMOTE_ADDR) is one of our proxies."""
        address = _address(peer)
        if address is None:
            return False
        if any(address in network for network in self.networks):
            return True
        if not self.hosts:
            return False
        if address in self._resolved:
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._resolved_at >= self._refresh_seconds:
                self._resolved_at = now
                resolved: set[Address] = set()
                for host in self.hosts:
                    resolved |= self._resolver(host)
                self._resolved = resolved
            return address in self._resolved


class TrustedProxyFix:
    """WSGI middleware: ProxyFix for requests from a trusted proxy, nothing for the rest."""

    def __init__(self, app: Any, *, hops: int, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Serve one request, believing its forwarded headers only from a trusted peer."""
        if self.trusted.trusts(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)


def trusted_proxy_config(hops: int, entries: str | None) -> TrustedProxies | None:
    """The trusted proxies to apply, None for none; refuses hops without addresses."""
    if hops < 0:
        raise ConfigError("TRUSTED_PROXY_HOPS must be 0 or more")
    trusted = TrustedProxies((entries or "").split(","))
    if hops and not trusted:
        raise ConfigError(
            "TRUSTED_PROXY_HOPS is set but TRUSTED_PROXIES is empty: name the proxies"
            " (the gateway's address or host name) whose X-Forwarded-For may be believed"
        )
    return trusted if hops else None
