"""Client addresses reduced to their network (个人信息保护法: data minimisation).

A claim keeps where its request came from only as the network around the address, /24 for IPv4 and /48
for IPv6 (one site's allocation): enough to look the network up in an IP-region table, not enough to
single out a household's connection. The full address is never stored.
"""

from __future__ import annotations

import ipaddress

__all__ = ["IPV4_PREFIX", "IPV6_PREFIX", "network_prefix"]

IPV4_PREFIX = 24
IPV6_PREFIX = 48


def network_prefix(address: str | None) -> str | None:
    """`"203.0.113.7"` -> `"203.0.113.0/24"`, `"2408:8456:3a:1::9"` -> `"2408:8456:3a::/48"`; an IPv4 address
    mapped into IPv6 (`::ffff:203.0.113.7`) counts as IPv4. None for None and for what is not an IP
    address (a test client's "testclient", a Unix socket's empty peer)."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        else:  # drops a zone id ("fe80::1%eth0"): it names an interface of ours, not the client's network
            return str(ipaddress.IPv6Network((int(parsed), IPV6_PREFIX), strict=False))
    return str(ipaddress.IPv4Network((int(parsed), IPV4_PREFIX), strict=False))
