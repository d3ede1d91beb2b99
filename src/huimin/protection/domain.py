"""Pure rules of protection: rates, the GCRA arithmetic, the client address, the refusals.

A rate `N/S` admits N requests at once and then one every S/N seconds (the generic cell rate
algorithm, GCRA: the token bucket stored as one number, the theoretical arrival time `tat`). It keeps
no window boundaries, so a client cannot double its rate by straddling one, and one timestamp per key
is all that Redis stores.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from huimin.errors import HuiminError

__all__ = [
    "Busy",
    "Denied",
    "Limit",
    "Rate",
    "RateLimited",
    "client_ip",
    "gcra",
    "parse_networks",
    "retry_after_seconds",
]

_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MICROS = 1_000_000


@dataclass(frozen=True)
class Rate:
    """`count` requests per `period` seconds, all of them at once if they come at once."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """`"10/60"` (10 per 60 s), `"10/1m"`, `"20000/1s"`; `"off"` or `"0"`: no limit (None)."""
        if text.strip().lower() in ("off", "0", ""):
            return None
        match = _RATE.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r}: write COUNT/SECONDS, e.g. 10/60 or 10/1m, or off")
        count, period = int(match[1]), float(match[2]) * _UNIT[match[3]]
        if count <= 0 or period <= 0:
            raise ValueError(f"{text!r}: count and period must be positive (or write off)")
        return cls(count, period)

    @property
    def interval_us(self) -> int:
        """Microseconds between two requests at the sustained rate (the emission interval T)."""
        return max(1, round(self.period * MICROS / self.count))

    @property
    def tolerance_us(self) -> int:
        """How far ahead of now `tat` may run: a full burst of `count` minus the request itself."""
        return self.interval_us * (self.count - 1)

    def __str__(self) -> str:
        return f"{self.count} per {self.period:g} s"


@dataclass(frozen=True)
class Limit:
    """One limit a request counts against: which (`name`, e.g. `resident`), whose (`key`), how much."""

    name: str
    key: str
    rate: Rate


@dataclass(frozen=True)
class Denied:
    """The limit that tripped and when the request would be admitted."""

    limit: Limit
    retry_after_us: int


def gcra(tat: int | None, now: int, rate: Rate) -> tuple[bool, int, int]:
    """One request against one limit: (admitted, the new tat to store, microseconds until admitted).

    A stored tat more than one period ahead of `now` cannot come from this clock (another clock, or a
    clock set back): it is treated as absent, so a skewed clock fails open rather than shut."""
    if tat is None or tat < now or tat - now > rate.tolerance_us + rate.interval_us:
        tat = now
    allow_at = tat - rate.tolerance_us
    if now < allow_at:
        return False, tat, allow_at - now
    return True, tat + rate.interval_us, 0


def retry_after_seconds(micros: int) -> int:
    """The `Retry-After` header: whole seconds, at least 1."""
    return max(1, math.ceil(micros / MICROS))


class RateLimited(HuiminError):
    """429 `rate_limited`: which limit tripped and when to retry."""

    status = 429
    code = "rate_limited"
    final = False

    def __init__(self, denied: Denied) -> None:
        self.limit = denied.limit.name
        self.retry_after = retry_after_seconds(denied.retry_after_us)
        super().__init__(
            f"too many requests ({self.limit} limit: {denied.limit.rate}); retry after {self.retry_after} s"
        )
        self.headers = {"Retry-After": str(self.retry_after)}

    def body(self) -> dict[str, Any]:
        return {**super().body(), "limit": self.limit, "retry_after": self.retry_after}


class Busy(HuiminError):
    """503 `busy`: this worker has as many claims in flight (and waiting) as it takes."""

    status = 503
    code = "busy"
    final = False

    def __init__(self, retry_after: int) -> None:
        super().__init__("the claim service is at capacity: retry shortly")
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}

    def body(self) -> dict[str, Any]:
        return {**super().body(), "retry_after": self.retry_after}


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """Trusted proxies as addresses or CIDR blocks (`10.0.0.0/8`, `127.0.0.1`)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in proxies)


def client_ip(peer: str | None, forwarded_for: str | None, proxies: Sequence[Network]) -> str | None:
    """The address of the client: the TCP peer, unless the peer is a trusted proxy, in which case the
    nearest address in `X-Forwarded-For` that is not itself a trusted proxy (read from the right: the
    left part is whatever the client chose to send)."""
    if peer is None or not proxies or not forwarded_for or not _trusted(peer, proxies):
        return peer
    address = peer
    for hop in reversed(forwarded_for.split(",")):
        try:
            address = str(ipaddress.ip_address(hop.strip()))
        except ValueError:
            return peer  # a malformed chain: do not guess
        if not _trusted(address, proxies):
            return address
    return address  # every hop is a proxy of ours: the first one is the client
