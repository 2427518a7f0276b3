"""Forwarded-for headers are believed from the configured proxies only (unit)."""

from __future__ import annotations

import ipaddress

import pytest
from flask import Flask, request

from shared.config import ConfigError
from shared.proxies import TrustedProxies, TrustedProxyFix, trusted_proxy_config


def client_address_app(hops: int, trusted: TrustedProxies) -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/ip", "ip", lambda: request.remote_addr or "")
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, hops=hops, trusted=trusted)  # type: ignore[method-assign]
    return app


def seen(app: Flask, peer: str, forwarded_for: str) -> str:
    response = app.test_client().get(
        "/ip", headers={"X-Forwarded-For": forwarded_for}, environ_base={"REMOTE_ADDR": peer}
    )
    return response.get_data(as_text=True)


def test_the_gateway_names_the_client_and_anyone_else_is_known_by_its_own_address():
    app = client_address_app(1, TrustedProxies(["10.0.0.5"]))
    assert seen(app, "10.0.0.5", "203.0.113.7") == "203.0.113.7"
    assert seen(app, "192.0.2.1", "203.0.113.7") == "192.0.2.1"


def test_networks_and_ipv4_mapped_peers_are_trusted():
    trusted = TrustedProxies(["10.1.0.0/16", "::1"])
    assert trusted.trusts("10.1.200.3") and trusted.trusts("::ffff:10.1.0.9")
    assert trusted.trusts("::1")
    assert not trusted.trusts("10.2.0.1") and not trusted.trusts("unknown")


def test_host_names_are_resolved_when_needed_and_at_most_once_per_interval():
    lookups: list[str] = []

    def resolver(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        lookups.append(host)
        return {ipaddress.ip_address("172.18.0.4")}

    trusted = TrustedProxies(["gateway"], resolver=resolver, refresh_seconds=60)
    assert trusted.trusts("172.18.0.4")
    for _ in range(5):
        assert not trusted.trusts("172.18.0.99")  # a direct caller costs no lookups
    assert lookups == ["gateway"]


def test_hops_without_proxies_or_a_malformed_entry_stop_start_up():
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES is empty"):
        trusted_proxy_config(1, "")
    with pytest.raises(ConfigError, match="no address"):
        trusted_proxy_config(1, "10.0.0.1, gate way!")
    assert trusted_proxy_config(0, "10.0.0.1") is None
