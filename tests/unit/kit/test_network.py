"""A client address is kept only as its network: /24 IPv4, /48 IPv6."""

from __future__ import annotations

import pytest

from huimin.kit.network import network_prefix


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.7", "203.0.113.0/24"),
        (" 10.1.2.3 ", "10.1.2.0/24"),
        ("2408:8456:3a:1::9", "2408:8456:3a::/48"),
        ("::ffff:203.0.113.7", "203.0.113.0/24"),  # IPv4 mapped into IPv6 is IPv4
        ("fe80::1%eth0", "fe80::/48"),
        ("testclient", None),
        ("", None),
        (None, None),
    ],
)
def test_the_address_is_reduced_to_its_network(address: str | None, network: str | None) -> None:
    assert network_prefix(address) == network
