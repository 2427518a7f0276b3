"""Keep user-supplied webhook URLs from reaching our own network (SSRF).

Two checks with one rule: a target is refused when ANY address its host resolves to is
loopback, private, link-local, multicast, reserved, unspecified or otherwise not global
(IPv4 addresses embedded in IPv6 ones are unwrapped first), unless private targets are
explicitly allowed. `TargetGuard.check_url` runs when an endpoint is registered (422);
`GuardedAdapter` runs the same check inside the HTTP connection at delivery time and
connects to exactly the addresses it just approved, so a DNS answer that changed since
registration, or between a check and the connect (DNS rebinding), cannot slip through.

The reasons in UnsafeTargetError name hosts and addresses: they are for our logs. What a
client is told is one generic sentence (`webhooks.REFUSED_TARGET`), or the answers would
map our internal DNS for them.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from services.notifications.deadline import Deadline

ALLOWED_SCHEMES = frozenset({"http", "https"})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the IP addresses (as text) a connection to it could reach.
Resolver = Callable[[str, int], list[str]]

DNS_TIMEOUT_SECONDS = 2.0
# Lookups that outlive their caller keep a thread until the system resolver gives up.
_LOOKUPS_IN_FLIGHT = threading.BoundedSemaphore(32)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_FORBIDDEN_KINDS = (
    # Most specific first: 169.254.169.254 is also "private", but "link-local" says more.
    ("is_loopback", "loopback"),
    ("is_unspecified", "unspecified"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_reserved", "reserved"),
    ("is_private", "private"),
)


class UnsafeTargetError(ValueError):
    """A webhook URL that must not be called: bad scheme, no host, or a non-public address."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address getaddrinfo gives for host:port (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_within(resolver: Resolver, host: str, port: int, timeout: float) -> list[str]:
    """resolver(host, port), or TimeoutError when it has no answer within `timeout` seconds."""
    # getaddrinfo takes no timeout and cannot be interrupted (urllib3's timeouts do not
    # cover it either), so it runs in a thread of its own that we stop waiting for. A
    # resolver such as dnspython would take a timeout, but not /etc/hosts or the numeric
    # spellings ("2130706433") that the system resolver understands and the guard checks.
    if not _LOOKUPS_IN_FLIGHT.acquire(blocking=False):
        raise TimeoutError("too many DNS lookups in flight")
    answer: Future[list[str]] = Future()

    def lookup() -> None:
        try:
            answer.set_result(resolver(host, port))
        except BaseException as exc:
            answer.set_exception(exc)
        finally:
            _LOOKUPS_IN_FLIGHT.release()

    threading.Thread(target=lookup, name="dns-lookup", daemon=True).start()
    try:
        return answer.result(timeout=timeout)
    except TimeoutError:
        raise TimeoutError(f"no DNS answer within {timeout:g} s") from None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # ::ffff:127.0.0.1, 2002:7f00:1::/48 and 64:ff9b::7f00:1 all reach an IPv4 host; the
    # IPv6 flags alone do not say which one (Python < 3.13 misses the mapped case).
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_kind(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address ("loopback", "private", ...), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        # The embedded IPv4 address is the host such an address really reaches.
        address = _embedded_ipv4(address) or address
    for attribute, kind in _FORBIDDEN_KINDS:
        if getattr(address, attribute):
            return kind
    if not address.is_global:
        return "non-public"  # shared address space (100.64/10), documentation ranges...
    return None


def _parse_ip(text: str) -> IPAddress:
    # getaddrinfo gives IPv6 link-local addresses with a zone ("fe80::1%eth0").
    return ipaddress.ip_address(text.split("%", 1)[0])


@dataclass(frozen=True)
class TargetGuard:
    """The SSRF policy: which URLs may be called and which addresses may be connected to."""

    allow_private: bool = False
    resolver: Resolver = field(default=system_resolver)
    resolve_timeout: float = DNS_TIMEOUT_SECONDS

    def check_url(self, url: str) -> None:
        """Raise UnsafeTargetError unless `url` is http(s) to a host resolving to public IPs."""
        host, port = self.split_url(url)
        self.resolve(host, port)

    def split_url(self, url: str) -> tuple[str, int]:
        """The (host, port) a URL connects to; UnsafeTargetError for anything but http(s)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UnsafeTargetError("the URL is not valid") from None
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise UnsafeTargetError("only http and https URLs are allowed")
        if parts.username is not None or parts.password is not None:
            raise UnsafeTargetError("credentials in the URL are not allowed")
        host = parts.hostname
        if not host:
            raise UnsafeTargetError("the URL has no host")
        return host, port or (443 if scheme == "https" else 80)

    def resolve(self, host: str, port: int, *, timeout: float | None = None) -> list[str]:
        """The addresses to connect to for host:port, each one checked against the policy."""
        limit = self.resolve_timeout if timeout is None else min(timeout, self.resolve_timeout)
        try:
            addresses = resolve_within(self.resolver, host, port, limit)
        except TimeoutError as exc:
            raise UnsafeTargetError(f"the host {host!r} does not resolve: {exc}") from None
        except (OSError, UnicodeError):
            raise UnsafeTargetError(f"the host {host!r} does not resolve") from None
        if not addresses:
            raise UnsafeTargetError(f"the host {host!r} does not resolve")
        if self.allow_private:
            return addresses
        for text in addresses:
            try:
                kind = forbidden_kind(_parse_ip(text))
            except ValueError:
                kind = "unparseable"
            if kind is not None:
                raise UnsafeTargetError(
                    f"the host {host!r} resolves to a {kind} address ({text}); "
                    "only public addresses are allowed"
                )
        return addresses


def _connect_checked(
    conn: HTTPConnection, guard: TargetGuard, deadline: Deadline | None
) -> socket.socket:
    """Resolve and check the host now, then connect to one of the addresses just checked."""
    addresses = guard.resolve(
        conn.host, conn.port, timeout=deadline.remaining() if deadline else None
    )
    last_error: OSError | None = None
    for address in addresses:
        try:
            sock = urllib3_connection.create_connection(
                (address, conn.port),
                deadline.bound(conn.timeout) if deadline else conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(conn, f"connecting to {conn.host} timed out") from exc
        except OSError as exc:
            last_error = exc
            continue
        if deadline is not None:
            try:
                deadline.watch(sock)  # from here on the watchdog ends TLS, headers, body
            except BaseException:
                sock.close()
                raise
        return sock
    raise NewConnectionError(conn, f"failed to connect to {conn.host}: {last_error}")


def _guarded_pool_classes(
    guard: TargetGuard, deadline: Deadline | None
) -> dict[str, type[HTTPConnectionPool]]:
    # urllib3 opens sockets in HTTPConnection._new_conn; overriding it is the one place
    # where the checked address and the connected address are guaranteed to be the same.
    # TLS still verifies the certificate against the URL's host name (conn.host).
    # Registered, with the urllib3 versions it was read against, in shared.overrides.
    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _connect_checked(self, guard, deadline)

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _connect_checked(self, guard, deadline)

    class GuardedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every connection goes through `TargetGuard.resolve`.

    With a `deadline`, lookups and connects get no more than the time left and every
    socket is watched by it: the whole exchange ends when the deadline does.
    """

    def __init__(self, guard: TargetGuard, *, deadline: Deadline | None = None) -> None:
        # Set first: HTTPAdapter.__init__ calls init_poolmanager.
        self.guard, self.deadline = guard, deadline
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The usual pool manager, with connection pools that check before connecting."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _guarded_pool_classes(self.guard, self.deadline)
