"""The SSRF guard: which webhook targets are refused, at registration and at connect time."""

from __future__ import annotations

import ipaddress

import pytest
import requests

from services.notifications.ssrf import (
    GuardedAdapter,
    TargetGuard,
    UnsafeTargetError,
    forbidden_kind,
)
from services.notifications.tests.conftest import WebhookReceiver, resolver_of


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.1.2.3", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::1", "loopback"),
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address: str, kind: str) -> None:
    assert forbidden_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_kind(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://hooks.example.com/x",
        "gopher://hooks.example.com/",
        "http:///no-host",
        "https://user:pass@hooks.example.com/",
        "http://hooks.example.com:99999/",
    ],
)
def test_urls_that_are_not_plain_http_to_a_host_are_refused(url: str) -> None:
    guard = TargetGuard(resolver=resolver_of({"hooks.example.com": ["93.184.215.14"]}))
    with pytest.raises(UnsafeTargetError):
        guard.check_url(url)


def test_a_host_is_refused_when_any_of_its_addresses_is_private() -> None:
    guard = TargetGuard(resolver=resolver_of({"mixed.example.com": ["93.184.215.14", "10.1.2.3"]}))
    with pytest.raises(UnsafeTargetError, match="private address"):
        guard.check_url("https://mixed.example.com/hook")


def test_a_host_with_only_public_addresses_is_allowed() -> None:
    guard = TargetGuard(resolver=resolver_of({"hooks.example.com": ["93.184.215.14"]}))
    guard.check_url("https://hooks.example.com/hook")


def test_numeric_tricks_for_loopback_are_caught_after_resolution() -> None:
    guard = TargetGuard()  # the system resolver turns these spellings into 127.0.0.1
    for url in ("http://2130706433/", "http://0x7f.1/", "http://[::ffff:7f00:1]/"):
        with pytest.raises(UnsafeTargetError, match="loopback"):
            guard.check_url(url)


def test_a_host_that_does_not_resolve_is_refused() -> None:
    guard = TargetGuard(resolver=resolver_of({}))
    with pytest.raises(UnsafeTargetError, match="does not resolve"):
        guard.check_url("https://nowhere.example.com/")


def test_private_targets_pass_when_explicitly_allowed() -> None:
    TargetGuard(allow_private=True).check_url("http://127.0.0.1:8080/hook")


def test_the_connection_itself_refuses_a_host_that_now_resolves_to_loopback(
    webhook_receiver: WebhookReceiver,
) -> None:
    answers = {"hooks.example.com": ["93.184.215.14"]}
    guard = TargetGuard(resolver=resolver_of(answers))
    url = f"http://hooks.example.com:{webhook_receiver.port}/hook"
    guard.check_url(url)  # at registration the name pointed somewhere public
    answers["hooks.example.com"] = ["127.0.0.1"]  # ... then its DNS changed

    session = requests.Session()
    session.mount("http://", GuardedAdapter(guard))
    with pytest.raises(UnsafeTargetError, match="loopback"):
        session.post(url, data=b"{}", timeout=2)
    assert webhook_receiver.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(
    webhook_receiver: WebhookReceiver,
) -> None:
    guard = TargetGuard(
        allow_private=True, resolver=resolver_of({"hooks.internal.test": ["127.0.0.1"]})
    )
    session = requests.Session()
    session.mount("http://", GuardedAdapter(guard))
    response = session.post(
        f"http://hooks.internal.test:{webhook_receiver.port}/hook", data=b"{}", timeout=2
    )
    assert response.status_code == 204
    assert (
        webhook_receiver.requests[0].headers["Host"]
        == f"hooks.internal.test:{webhook_receiver.port}"
    )


def test_https_connections_are_checked_before_any_tls_handshake() -> None:
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    session = requests.Session()
    session.mount("https://", GuardedAdapter(TargetGuard(resolver=resolve)))
    with pytest.raises(UnsafeTargetError, match="loopback"):
        session.post("https://hooks.example.com/hook", data=b"{}", timeout=2)
    assert asked == [("hooks.example.com", 443)]
