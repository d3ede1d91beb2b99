"""Identifiers: prefixed, time-ordered, unguessable.

`new_id("cmp")` -> "cmp_01J9ZQ4V8K3M2N7P5R6S8T0VWX": 48 bits of milliseconds then 80 random bits in
Crockford base32 (the ULID layout), so ids sort by creation time, index well as primary keys and
cannot be enumerated. The prefix says what the id names, which catches ids passed to the wrong place.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

__all__ = ["CROCKFORD", "is_id", "new_id"]

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PREFIX = re.compile(r"[a-z]{2,5}")


def new_id(prefix: str, *, at: datetime | None = None) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"id prefix must be 2-5 lower-case letters, got {prefix!r}")
    # Ids order rows, they are not business time: the system clock is right here even under a
    # simulated campaign clock, because uniqueness only needs the random part.
    instant = at or datetime.now(UTC)
    millis = int(instant.timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | secrets.randbits(80)
    return f"{prefix}_{_base32(value, 26)}"


def is_id(value: str, prefix: str) -> bool:
    head, _, body = value.partition("_")
    return head == prefix and len(body) == 26 and all(char in CROCKFORD for char in body)


def _base32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))
